//! Writing a loaded model's plan as a Rust expression (the `codegen` feature, for the tools):
//! the inverse of the constructors in [`super`], which the written expression calls.

use core::fmt::{self, Write};

use super::{DenseWeights, DirWeights, LayerPlan, Model, RecurrentPlan, Table};
use crate::cell::quantized::{IntCell, IntDense, IntDirectionViews};
use crate::cell::{CellSpec, DirectionViews};
use crate::error::Feature;
use crate::format::{Activation, DetectorParams, QParams};
use crate::kernels::{F32View, I32View, Matrix, RequantView, WeightLayout};
use crate::quant::Requant;

/// Writes `model`, loaded from `blob`, as a Rust block expression of type
/// `edgernn::Model<'static, L>` for a `static` item: it checks the plan version and the
/// features the model needs, then builds the plan with every weight view a slice of
/// `blob_expr`, an expression naming the same bytes in the generated file (`&MODEL.0`).
///
/// Fails with [`fmt::Error`] when `out` does, or when a view of the plan is not inside `blob`
/// (the model was not loaded from it).
pub fn write_plan<const L: usize>(
    model: &Model<'_, L>,
    blob: &[u8],
    blob_expr: &str,
    out: &mut dyn Write,
) -> fmt::Result {
    let mut w = Source {
        out,
        blob,
        depth: 1,
    };
    w.out.write_str("{\n")?;
    w.line(format_args!("use edgernn::model::prebuilt::*;"))?;
    w.line(format_args!("expect_version({});", super::PLAN_VERSION))?;
    w.indent()?;
    w.out.write_str("require(&[")?;
    for (i, feature) in needed_features(model).enumerate() {
        if i > 0 {
            w.out.write_str(", ")?;
        }
        write!(w.out, "Feature::{feature:?}")?;
    }
    w.out.write_str("]);\n")?;
    w.line(format_args!("let blob: &[u8] = {blob_expr};"))?;
    w.line(format_args!("model("))?;
    w.depth += 1;
    w.facts(model)?;
    w.line(format_args!("["))?;
    w.depth += 1;
    for layer in model.plans() {
        w.indent()?;
        w.layer(layer)?;
        w.out.write_str(",\n")?;
    }
    w.depth -= 1;
    w.line(format_args!("],"))?;
    w.depth -= 1;
    w.line(format_args!(")"))?;
    w.out.write_str("}")
}

/// The features a build needs to run `model`: what the loader requires of each layer.
fn needed_features<'m, const L: usize>(
    model: &'m Model<'_, L>,
) -> impl Iterator<Item = Feature> + 'm {
    let arithmetic = if model.mode.is_integer() {
        Feature::Integer
    } else {
        Feature::Float
    };
    let all = [
        Feature::SimpleRnn,
        Feature::Lstm,
        Feature::Gru,
        Feature::WholeWindow,
        Feature::Embedding,
        Feature::Softmax,
        Feature::Interleaved4,
    ];
    let needs = move |feature: Feature| {
        model.plans().iter().any(|layer| match (layer, feature) {
            (LayerPlan::Recurrent(r), Feature::SimpleRnn | Feature::Lstm | Feature::Gru) => {
                Feature::for_cell(r.spec.cell) == feature
            }
            (LayerPlan::Recurrent(r), Feature::WholeWindow) => r.merge.is_some() || r.go_backwards,
            (LayerPlan::Recurrent(r), Feature::Interleaved4) => {
                matches!(r.forward, DirWeights::Int(d) if d.layout == WeightLayout::Interleaved4)
            }
            (LayerPlan::Repeat(..), Feature::WholeWindow) => true,
            (LayerPlan::Embedding(_), Feature::Embedding) => true,
            (LayerPlan::Dense(d), Feature::Softmax) => d.activation == Activation::Softmax,
            _ => false,
        })
    };
    core::iter::once(arithmetic).chain(all.into_iter().filter(move |f| needs(*f)))
}

/// The writer: `out`, the blob the views point into, and the indentation depth.
struct Source<'o, 'b> {
    out: &'o mut dyn Write,
    blob: &'b [u8],
    depth: usize,
}

impl Source<'_, '_> {
    fn indent(&mut self) -> fmt::Result {
        for _ in 0..self.depth {
            self.out.write_str("    ")?;
        }
        Ok(())
    }

    /// One indented line.
    fn line(&mut self, text: fmt::Arguments<'_>) -> fmt::Result {
        self.indent()?;
        self.out.write_fmt(text)?;
        self.out.write_str("\n")
    }

    /// `name: ` on a new indented line; the value and its `,\n` follow.
    fn field(&mut self, name: &str) -> fmt::Result {
        self.indent()?;
        write!(self.out, "{name}: ")
    }

    /// `name: value,` on one line.
    fn simple(&mut self, name: &str, value: fmt::Arguments<'_>) -> fmt::Result {
        self.field(name)?;
        self.out.write_fmt(value)?;
        self.out.write_str(",\n")
    }

    /// Opens a struct literal or call spanning lines (`head` then a newline).
    fn open(&mut self, head: &str) -> fmt::Result {
        self.out.write_str(head)?;
        self.out.write_str("\n")?;
        self.depth += 1;
        Ok(())
    }

    /// Closes what [`Source::open`] opened with `tail` on its own indented line.
    fn close(&mut self, tail: &str) -> fmt::Result {
        self.depth -= 1;
        self.indent()?;
        self.out.write_str(tail)
    }

    /// Where `bytes` lie in the blob: start and length.
    fn range(&self, bytes: &[u8]) -> Result<(usize, usize), fmt::Error> {
        let start = (bytes.as_ptr() as usize).wrapping_sub(self.blob.as_ptr() as usize);
        match start.checked_add(bytes.len()) {
            Some(end) if end <= self.blob.len() => Ok((start, bytes.len())),
            _ => Err(fmt::Error),
        }
    }

    /// A slice of the blob, by offset and length.
    fn slice(&mut self, bytes: &[u8]) -> fmt::Result {
        if bytes.is_empty() {
            return self.out.write_str("&[]");
        }
        let (start, len) = self.range(bytes)?;
        write!(self.out, "bytes(blob, {start}, {len})")
    }

    fn f32(&mut self, value: f32) -> fmt::Result {
        // Bits, so the build gets exactly the loaded value (NaN and -0.0 included).
        write!(self.out, "f32::from_bits(0x{:08x})", value.to_bits())
    }

    fn f32_view(&mut self, view: F32View<'_>) -> fmt::Result {
        self.out.write_str("F32View::new(")?;
        self.slice(view.as_bytes())?;
        self.out.write_str(")")
    }

    fn i32_view(&mut self, view: I32View<'_>) -> fmt::Result {
        self.out.write_str("I32View::new(")?;
        self.slice(view.as_bytes())?;
        self.out.write_str(")")
    }

    fn requant_view(&mut self, view: RequantView<'_>) -> fmt::Result {
        self.out.write_str("RequantView::new(")?;
        self.i32_view(view.values())?;
        self.out.write_str(")")
    }

    /// `Some(...)` around what `write` writes, or `None`.
    fn optional<T>(
        &mut self,
        value: Option<T>,
        write: impl FnOnce(&mut Self, T) -> fmt::Result,
    ) -> fmt::Result {
        match value {
            Some(value) => {
                self.out.write_str("Some(")?;
                write(self, value)?;
                self.out.write_str(")")
            }
            None => self.out.write_str("None"),
        }
    }

    /// `name: ` on a new indented line, what `write` writes, and `,\n`.
    fn entry(&mut self, name: &str, write: impl FnOnce(&mut Self) -> fmt::Result) -> fmt::Result {
        self.field(name)?;
        write(self)?;
        self.out.write_str(",\n")
    }

    fn qparams(&mut self, q: QParams) -> fmt::Result {
        self.out.write_str("QParams { scale: ")?;
        self.f32(q.scale)?;
        write!(self.out, ", zero_point: {} }}", q.zero_point)
    }

    fn optional_view(&mut self, view: Option<F32View<'_>>) -> fmt::Result {
        self.optional(view, Self::f32_view)
    }

    fn spec(&mut self, spec: CellSpec) -> fmt::Result {
        write!(
            self.out,
            "CellSpec {{ cell: Cell::{:?}, units: {}, activation: Activation::{:?}, \
             recurrent_activation: Activation::{:?} }}",
            spec.cell, spec.units, spec.activation, spec.recurrent_activation
        )
    }

    fn requant(&mut self, r: Requant) -> fmt::Result {
        write!(
            self.out,
            "Requant {{ multiplier: {}, shift: {} }}",
            r.multiplier, r.shift
        )
    }

    fn facts<const L: usize>(&mut self, model: &Model<'_, L>) -> fmt::Result {
        let facts = model.facts();
        self.indent()?;
        self.open("ModelFacts {")?;
        self.simple("mode", format_args!("QuantMode::{:?}", facts.mode))?;
        self.entry("input_quant", |w| {
            w.optional(facts.input_quant, Self::qparams)
        })?;
        self.entry("output_quant", |w| {
            w.optional(facts.output_quant, Self::qparams)
        })?;
        self.simple("blob_len", format_args!("{}", facts.blob_len))?;
        self.simple("input_features", format_args!("{}", facts.input_features))?;
        self.simple("output_width", format_args!("{}", facts.output_width))?;
        self.simple(
            "output_is_sequence",
            format_args!("{}", facts.output_is_sequence),
        )?;
        self.simple("state_len", format_args!("{}", facts.state_len))?;
        self.simple("max_width", format_args!("{}", facts.max_width))?;
        self.simple("step_width", format_args!("{}", facts.step_width))?;
        self.simple("max_units", format_args!("{}", facts.max_units))?;
        self.simple(
            "max_cell_scratch",
            format_args!("{}", facts.max_cell_scratch),
        )?;
        self.simple("streamable", format_args!("{}", facts.streamable))?;
        self.simple("repeated_steps", format_args!("{:?}", facts.repeated_steps))?;
        self.simple("reads_tokens", format_args!("{}", facts.reads_tokens))?;
        self.simple("head_start", format_args!("{}", facts.head_start))?;
        self.entry("vocabulary", |w| {
            w.optional(facts.vocabulary, |w, text| {
                let (start, len) = w.range(text.as_bytes())?;
                write!(w.out, "text(blob, {start}, {len})")
            })
        })?;
        self.entry("detector", |w| w.optional(facts.detector, Self::detector))?;
        self.close("},\n")
    }

    fn detector(&mut self, d: DetectorParams) -> fmt::Result {
        write!(
            self.out,
            "DetectorParams {{ window: {}, forecasts_change: {}, short_window: {}, \
             long_window: {}, warmup: {}, flag_on: ",
            d.window, d.forecasts_change, d.short_window, d.long_window, d.warmup
        )?;
        self.f32(d.flag_on)?;
        self.out.write_str(", flag_off: ")?;
        self.f32(d.flag_off)?;
        write!(self.out, ", refractory: {} }}", d.refractory)
    }

    fn layer(&mut self, layer: &LayerPlan<'_>) -> fmt::Result {
        match layer {
            LayerPlan::Recurrent(r) => {
                self.out.write_str("LayerPlan::Recurrent(")?;
                self.recurrent(r)?;
                self.out.write_str(")")
            }
            LayerPlan::Dense(d) => {
                self.open("LayerPlan::Dense(DensePlan {")?;
                self.simple("units", format_args!("{}", d.units))?;
                self.simple("activation", format_args!("Activation::{:?}", d.activation))?;
                self.field("weights")?;
                match &d.weights {
                    DenseWeights::Float { kernel, bias } => {
                        self.open("DenseWeights::Float {")?;
                        self.entry("kernel", |w| w.matrix(kernel))?;
                        self.entry("bias", |w| w.optional_view(*bias))?;
                        self.close("}")?;
                    }
                    DenseWeights::Int(dense) => self.int_dense(dense)?,
                }
                self.out.write_str(",\n")?;
                self.close("})")
            }
            LayerPlan::Normalization(n, width) => {
                self.open("LayerPlan::Normalization(")?;
                self.indent()?;
                self.out.write_str("NormalizationPlan { mean: ")?;
                self.f32_view(n.mean)?;
                self.out.write_str(", std: ")?;
                self.f32_view(n.std)?;
                self.out.write_str(" },\n")?;
                self.line(format_args!("{width},"))?;
                self.close(")")
            }
            LayerPlan::Embedding(e) => {
                write!(
                    self.out,
                    "LayerPlan::Embedding(EmbeddingPlan {{ vocab: {}, dim: {}, table: ",
                    e.vocab, e.dim
                )?;
                match e.table {
                    Table::F32(view) => {
                        self.out.write_str("Table::F32(")?;
                        self.f32_view(view)?;
                    }
                    Table::I16(bytes) => {
                        self.out.write_str("Table::I16(")?;
                        self.slice(bytes)?;
                    }
                }
                self.out.write_str(") })")
            }
            LayerPlan::Repeat(times, width) => {
                write!(self.out, "LayerPlan::Repeat({times}, {width})")
            }
        }
    }

    fn recurrent(&mut self, r: &RecurrentPlan<'_>) -> fmt::Result {
        let bidirectional = r.merge.is_some();
        if bidirectional {
            self.open("with_backward(")?;
            self.indent()?;
        }
        self.open("RecurrentPlan {")?;
        self.entry("spec", |w| w.spec(r.spec))?;
        self.simple("input_width", format_args!("{}", r.input_width))?;
        self.simple("return_sequences", format_args!("{}", r.return_sequences))?;
        self.simple("go_backwards", format_args!("{}", r.go_backwards))?;
        self.entry("merge", |w| {
            w.optional(r.merge, |w, merge| write!(w.out, "Merge::{merge:?}"))
        })?;
        self.entry("forward", |w| w.direction(&r.forward))?;
        self.simple("state_offset", format_args!("{}", r.state_offset))?;
        self.entry("int", |w| w.optional(r.int.as_ref(), Self::int_cell))?;
        // The fields a build does not keep (Bidirectional's backward weights without
        // `whole-window`) come from the empty plan.
        self.line(format_args!("..EMPTY_RECURRENT"))?;
        self.close("}")?;
        if bidirectional {
            self.out.write_str(",\n")?;
            self.indent()?;
            self.direction(backward(r).ok_or(fmt::Error)?)?;
            self.out.write_str(",\n")?;
            self.close(")")?;
        }
        Ok(())
    }

    fn direction(&mut self, d: &DirWeights<'_>) -> fmt::Result {
        match d {
            DirWeights::Float(views) => self.float_direction(views),
            DirWeights::Int(views) => self.int_direction(views),
        }
    }

    fn float_direction(&mut self, d: &DirectionViews<'_>) -> fmt::Result {
        self.open("DirWeights::Float(DirectionViews {")?;
        self.entry("kernel", |w| w.matrix(&d.kernel))?;
        self.entry("recurrent_kernel", |w| w.matrix(&d.recurrent_kernel))?;
        self.entry("bias", |w| w.optional_view(d.bias))?;
        self.entry("recurrent_bias", |w| w.optional_view(d.recurrent_bias))?;
        self.close("})")
    }

    fn int_direction(&mut self, d: &IntDirectionViews<'_>) -> fmt::Result {
        self.open("DirWeights::Int(IntDirectionViews {")?;
        self.entry("kernel", |w| w.slice(d.kernel))?;
        self.entry("recurrent_kernel", |w| w.slice(d.recurrent_kernel))?;
        self.entry("bias_x", |w| w.i32_view(d.bias_x))?;
        self.entry("bias_h", |w| w.i32_view(d.bias_h))?;
        self.entry("requant_x", |w| w.requant_view(d.requant_x))?;
        self.entry("requant_h", |w| w.requant_view(d.requant_h))?;
        self.entry("requant_reset", |w| w.requant_view(d.requant_reset))?;
        self.simple("layout", format_args!("WeightLayout::{:?}", d.layout))?;
        self.close("})")
    }

    fn matrix(&mut self, m: &Matrix<'_>) -> fmt::Result {
        match *m {
            Matrix::F32(view) => {
                self.out.write_str("Matrix::F32(")?;
                self.f32_view(view)?;
                self.out.write_str(")")
            }
            Matrix::I8 { weights, scales } => {
                self.out.write_str("Matrix::I8 { weights: ")?;
                self.slice(weights)?;
                self.out.write_str(", scales: ")?;
                self.f32_view(scales)?;
                self.out.write_str(" }")
            }
        }
    }

    fn int_cell(&mut self, int: &IntCell) -> fmt::Result {
        self.open("IntCell {")?;
        self.entry("spec", |w| w.spec(int.spec))?;
        let q = &int.quant;
        self.field("quant")?;
        self.open("cell_quant(&RecurrentQuant {")?;
        self.entry("output", |w| w.qparams(q.output))?;
        self.entry("output_requant", |w| w.requant(q.output_requant))?;
        self.entry("h_to_q15", |w| w.requant(q.h_to_q15))?;
        self.simple("cell_frac_bits", format_args!("{}", q.cell_frac_bits))?;
        self.entry("merged", |w| {
            w.optional(q.merged(), |w, (params, requant)| {
                w.out.write_str("(")?;
                w.qparams(params)?;
                w.out.write_str(", ")?;
                w.requant(requant)?;
                w.out.write_str(")")
            })
        })?;
        self.close("}),\n")?;
        self.simple("lo", format_args!("{}", int.lo))?;
        self.simple("hi", format_args!("{}", int.hi))?;
        self.close("}")
    }

    fn int_dense(&mut self, d: &IntDense<'_>) -> fmt::Result {
        self.open("DenseWeights::Int(IntDense {")?;
        self.entry("kernel", |w| w.slice(d.kernel))?;
        self.entry("bias", |w| w.i32_view(d.bias))?;
        self.entry("requant", |w| w.requant_view(d.requant))?;
        self.field("quant")?;
        self.out.write_str("DenseQuant { output: ")?;
        self.qparams(d.quant.output)?;
        self.out.write_str(", output_requant: ")?;
        self.requant(d.quant.output_requant)?;
        self.out.write_str(" },\n")?;
        self.simple("activation", format_args!("Activation::{:?}", d.activation))?;
        self.simple("lo", format_args!("{}", d.lo))?;
        self.simple("hi", format_args!("{}", d.hi))?;
        self.close("})")
    }
}

/// A Bidirectional layer's backward weights (`None` in builds that cannot keep them).
fn backward<'p, 'a>(r: &'p RecurrentPlan<'a>) -> Option<&'p DirWeights<'a>> {
    #[cfg(feature = "whole-window")]
    return Some(&r.backward);
    #[cfg(not(feature = "whole-window"))]
    {
        let _ = r;
        None
    }
}
