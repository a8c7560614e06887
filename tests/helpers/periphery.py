"""A kernel periphery vector for tests."""
import numpy as np

from crossbar_sim import kernels as K


def periphery(analog=True, dac_bits=8, adc_bits=8, adc_range=4.0, read_sigma=0.02, rows=256, cols=256, x_max=1.0):
    """A kernel periphery vector (``kernels.PER_*``)."""
    per = np.zeros(K.N_PER)
    per[K.PER_ANALOG] = 1.0 if analog else 0.0
    per[K.PER_DAC_STEPS] = 2 ** dac_bits - 1 if dac_bits else 0
    per[K.PER_ADC_STEPS] = 2 ** adc_bits - 2 if adc_bits else 0
    per[K.PER_ADC_RANGE] = adc_range
    per[K.PER_READ_SIGMA] = read_sigma
    per[K.PER_TILE_ROWS] = rows
    per[K.PER_TILE_COLS] = cols
    per[K.PER_X_MAX] = x_max
    return per
