// PLACEHOLDER: empty until the f64 math library is written (this file is overwritten).
