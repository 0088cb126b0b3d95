//! The weight section of a quantized blob, tensor by tensor.

use edgernn::format::{TensorRef, WEIGHT_ALIGN};

/// Appends tensors at 16-byte aligned offsets.
#[derive(Debug, Default)]
pub struct WeightWriter {
    bytes: Vec<u8>,
}

impl WeightWriter {
    fn start(&mut self, len: usize) -> TensorRef {
        while !self.bytes.len().is_multiple_of(WEIGHT_ALIGN) {
            self.bytes.push(0);
        }
        TensorRef {
            offset: self.bytes.len() as u32,
            len: len as u32,
        }
    }

    pub fn f32s(&mut self, values: &[f32]) -> TensorRef {
        let t = self.start(values.len());
        values
            .iter()
            .for_each(|v| self.bytes.extend_from_slice(&v.to_le_bytes()));
        t
    }

    pub fn i32s(&mut self, values: &[i32]) -> TensorRef {
        let t = self.start(values.len());
        values
            .iter()
            .for_each(|v| self.bytes.extend_from_slice(&v.to_le_bytes()));
        t
    }

    pub fn i16s(&mut self, values: &[i16]) -> TensorRef {
        let t = self.start(values.len());
        values
            .iter()
            .for_each(|v| self.bytes.extend_from_slice(&v.to_le_bytes()));
        t
    }

    pub fn i8s(&mut self, values: &[i8]) -> TensorRef {
        let t = self.start(values.len());
        self.bytes.extend(values.iter().map(|&v| v as u8));
        t
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}
