// PLACEHOLDER: empty until the Philox library is written (this file is overwritten).
