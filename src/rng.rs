//! PLACEHOLDER so the crate compiles while the Philox module is being written; the Philox
//! helper replaces this whole file.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    pub seed: u64,
    pub kernel: u32,
    pub site: u32,
    pub step: i64,
    pub element: u32,
}
impl Stream {
    pub fn uniform_f64(&self) -> f64 {
        unimplemented!()
    }
    pub fn uniform_f32(&self) -> f32 {
        unimplemented!()
    }
    pub fn normal_f64(&self) -> f64 {
        unimplemented!()
    }
    pub fn normal_f32(&self) -> f32 {
        unimplemented!()
    }
    pub fn poisson(&self, _lam: f64) -> i32 {
        unimplemented!()
    }
    pub fn binomial(&self, _n: i32, _p: f64) -> i32 {
        unimplemented!()
    }
}
