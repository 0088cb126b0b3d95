//! Models loaded at build time: what a file written by `edgernn export --rust OUT.rs --plan`
//! calls to build its `PLAN`, a `static` [`Model`] in flash.
//!
//! The exporter runs the checked loader ([`Model::from_bytes`]) on the host and writes the
//! plan it built as Rust source: the same values, with every weight view a slice of the
//! embedded blob. The firmware then links no loader (no header reader, no plan checks) and
//! keeps no `Model` value in RAM, and the compiler evaluates the plan: a file that no longer
//! fits this version of the crate, a slice outside the blob or a model that needs a feature the
//! build left out stops the build with a message, never the device.
//!
//! The plan's checks ran where the file was written, so the file must be the exporter's, as
//! the blob must be the writer's: CI regenerates such files and compares them. A hand-edited
//! plan is not checked again. It cannot cause undefined behaviour or a panic (the run calls
//! check the slices they index, and the kernels the lengths they read), but it can give wrong
//! outputs.
//!
//! Nothing here is for hand-written code: the plan types are hidden from the docs, and their
//! shape follows the crate's version ([`PLAN_VERSION`]).

pub use super::{
    DensePlan, DenseWeights, DirWeights, EmbeddingPlan, LayerPlan, NormalizationPlan,
    RecurrentPlan, Table,
};
pub use crate::cell::quantized::{cell_quant, IntCell, IntDense, IntDirectionViews};
pub use crate::cell::{CellSpec, DirectionViews};
pub use crate::error::Feature;
pub use crate::format::{
    Activation, Cell, DenseQuant, DetectorParams, Merge, QParams, QuantMode, RecurrentQuant,
};
pub use crate::kernels::{F32View, I32View, Matrix, RequantView, WeightLayout};
pub use crate::quant::Requant;

use super::Model;

#[cfg(feature = "codegen")]
mod source;
#[cfg(feature = "codegen")]
pub use source::write_plan;

/// The shape of the plan types a generated file names. Raised whenever they change meaning,
/// so an old file fails to build instead of building a wrong model.
pub const PLAN_VERSION: u32 = 1;

/// Stops the build when a file was written for another plan version.
pub const fn expect_version(version: u32) {
    if version != PLAN_VERSION {
        panic!("this model file was written for another edgernn version: regenerate it with `edgernn export --plan`");
    }
}

/// Stops the build when the model needs a feature this build of the crate left out (the
/// loader's [`crate::LoadError::FeatureDisabled`], at compile time).
pub const fn require(features: &[Feature]) {
    let mut i = 0;
    while i < features.len() {
        if !features[i].enabled() {
            match features[i] {
                Feature::Float => panic!("this model needs edgernn's `float` feature"),
                Feature::Integer => panic!("this model needs edgernn's `integer` feature"),
                Feature::SimpleRnn => panic!("this model needs edgernn's `simple-rnn` feature"),
                Feature::Lstm => panic!("this model needs edgernn's `lstm` feature"),
                Feature::Gru => panic!("this model needs edgernn's `gru` feature"),
                Feature::WholeWindow => panic!("this model needs edgernn's `whole-window` feature"),
                Feature::Embedding => panic!("this model needs edgernn's `embedding` feature"),
                Feature::Softmax => panic!("this model needs edgernn's `softmax` feature"),
                Feature::Interleaved4 => {
                    panic!("this model needs edgernn's `interleaved4` feature")
                }
            }
        }
        i += 1;
    }
}

/// `len` bytes of `blob` from `start` (the build stops when they are not all inside it).
pub const fn bytes(blob: &[u8], start: usize, len: usize) -> &[u8] {
    let Some((_, rest)) = blob.split_at_checked(start) else {
        panic!("a weight view starts past the end of the blob");
    };
    let Some((view, _)) = rest.split_at_checked(len) else {
        panic!("a weight view ends past the end of the blob");
    };
    view
}

/// `len` bytes of `blob` from `start` as text (the vocabulary record).
pub const fn text(blob: &[u8], start: usize, len: usize) -> &str {
    match core::str::from_utf8(bytes(blob, start, len)) {
        Ok(text) => text,
        Err(_) => panic!("the vocabulary is not UTF-8"),
    }
}

/// A Bidirectional layer's plan with its backward weights (which builds without
/// `whole-window` do not keep: they cannot run such a layer, and [`require`] stops them).
pub const fn with_backward<'a>(
    plan: RecurrentPlan<'a>,
    backward: DirWeights<'a>,
) -> RecurrentPlan<'a> {
    #[cfg(feature = "whole-window")]
    {
        let mut plan = plan;
        plan.backward = backward;
        plan
    }
    #[cfg(not(feature = "whole-window"))]
    {
        let _ = backward;
        plan
    }
}

/// A recurrent plan with nothing in it, for `..EMPTY_RECURRENT` in generated struct literals
/// (the fields a build does not have are left to it).
pub const EMPTY_RECURRENT: RecurrentPlan<'static> = RecurrentPlan {
    spec: CellSpec {
        cell: Cell::Lstm,
        units: 0,
        activation: Activation::Tanh,
        recurrent_activation: Activation::Sigmoid,
    },
    input_width: 0,
    return_sequences: false,
    go_backwards: false,
    merge: None,
    forward: DirWeights::Float(DirectionViews::EMPTY),
    #[cfg(feature = "whole-window")]
    backward: DirWeights::Float(DirectionViews::EMPTY),
    state_offset: 0,
    int: None,
};

/// The model-wide facts of a plan: [`Model`]'s fields besides its layers, each with the
/// meaning the loader gives it.
#[derive(Debug, Clone, Copy)]
pub struct ModelFacts<'a> {
    pub mode: QuantMode,
    pub input_quant: Option<QParams>,
    pub output_quant: Option<QParams>,
    pub blob_len: usize,
    pub input_features: usize,
    pub output_width: usize,
    pub output_is_sequence: bool,
    pub state_len: usize,
    pub max_width: usize,
    pub step_width: usize,
    pub max_units: usize,
    pub max_cell_scratch: usize,
    pub streamable: bool,
    pub repeated_steps: Option<usize>,
    pub reads_tokens: bool,
    pub head_start: usize,
    pub vocabulary: Option<&'a str>,
    /// Dropped by builds without `detect`, as the loader drops it.
    pub detector: Option<DetectorParams>,
}

/// The model of `facts` and `layers`, as the loader would have built it.
pub const fn model<'a, const L: usize>(
    facts: ModelFacts<'a>,
    layers: [LayerPlan<'a>; L],
) -> Model<'a, L> {
    Model {
        mode: facts.mode,
        input_quant: facts.input_quant,
        output_quant: facts.output_quant,
        layers: heapless::Vec::from_array(layers),
        blob_len: facts.blob_len,
        input_features: facts.input_features,
        output_width: facts.output_width,
        output_is_sequence: facts.output_is_sequence,
        state_len: facts.state_len,
        max_width: facts.max_width,
        step_width: facts.step_width,
        max_units: facts.max_units,
        max_cell_scratch: facts.max_cell_scratch,
        streamable: facts.streamable,
        repeated_steps: facts.repeated_steps,
        reads_tokens: facts.reads_tokens,
        head_start: facts.head_start,
        vocabulary: facts.vocabulary,
        #[cfg(feature = "detect")]
        detector: facts.detector,
    }
}

impl<'a, const L: usize> Model<'a, L> {
    /// The model-wide facts of this model's plan (for [`write_plan`]).
    #[cfg_attr(not(feature = "codegen"), allow(dead_code))]
    pub(crate) fn facts(&self) -> ModelFacts<'a> {
        ModelFacts {
            mode: self.mode,
            input_quant: self.input_quant,
            output_quant: self.output_quant,
            blob_len: self.blob_len,
            input_features: self.input_features,
            output_width: self.output_width,
            output_is_sequence: self.output_is_sequence,
            state_len: self.state_len,
            max_width: self.max_width,
            step_width: self.step_width,
            max_units: self.max_units,
            max_cell_scratch: self.max_cell_scratch,
            streamable: self.streamable,
            repeated_steps: self.repeated_steps,
            reads_tokens: self.reads_tokens,
            head_start: self.head_start,
            vocabulary: self.vocabulary,
            detector: self.detector_params(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_the_named_bytes() {
        let blob = [1u8, 2, 3, 4, 5];
        assert_eq!(bytes(&blob, 1, 3), &[2, 3, 4]);
        assert_eq!(bytes(&blob, 5, 0), &[] as &[u8]);
        assert_eq!(text(b"abc", 1, 2), "bc");
    }

    #[test]
    #[should_panic(expected = "ends past the end of the blob")]
    fn a_view_past_the_end_stops() {
        bytes(&[0u8; 4], 2, 3);
    }

    #[test]
    #[should_panic(expected = "starts past the end of the blob")]
    fn a_view_starting_past_the_end_stops() {
        bytes(&[0u8; 4], 5, 0);
    }

    #[test]
    #[should_panic(expected = "not UTF-8")]
    fn a_vocabulary_that_is_not_text_stops() {
        text(&[0xff, 0xfe], 0, 2);
    }

    #[test]
    #[should_panic(expected = "another edgernn version")]
    fn another_plan_version_stops() {
        expect_version(PLAN_VERSION + 1);
    }

    #[test]
    fn enabled_features_pass() {
        expect_version(PLAN_VERSION);
        require(&[]);
        if cfg!(feature = "integer") {
            require(&[Feature::Integer]);
        }
    }

    #[cfg(not(feature = "float"))]
    #[test]
    #[should_panic(expected = "needs edgernn's `float` feature")]
    fn a_missing_feature_stops() {
        require(&[Feature::Float]);
    }

    /// The empty recurrent plan's directions are the loader's defaults, so a plan written with
    /// `..EMPTY_RECURRENT` equals the loaded one field for field.
    #[test]
    fn the_empty_direction_is_the_default() {
        assert_eq!(
            std::format!("{:?}", DirWeights::Float(DirectionViews::EMPTY)),
            std::format!("{:?}", DirWeights::default())
        );
    }
}
