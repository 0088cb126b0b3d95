//! Property tests over random models: streaming equals the sequence call bit for bit, state
//! save/restore continues identically, and damaged blobs are refused without panicking.

mod common;

use common::aligned;
use edgernn::format::{Activation, Cell, Merge};
use edgernn::{LoadError, Model};
use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
use proptest::prelude::*;

const CELL_ACTIVATIONS: [Activation; 5] = [
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::HardSigmoid,
    Activation::Relu,
    Activation::Linear,
];
const DENSE_ACTIVATIONS: [Activation; 6] = [
    Activation::Linear,
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::HardSigmoid,
    Activation::Softmax,
];
const CELLS: [Cell; 4] = [
    Cell::SimpleRnn,
    Cell::Lstm,
    Cell::Gru { reset_after: true },
    Cell::Gru { reset_after: false },
];

#[derive(Debug, Clone)]
struct LayerChoice {
    cell: usize,
    units: usize,
    activation: usize,
    recurrent_activation: usize,
    use_bias: bool,
    merge: Option<usize>,
    go_backwards: bool,
}

#[derive(Debug, Clone)]
struct ModelChoice {
    features: usize,
    recurrent: Vec<LayerChoice>,
    last_returns_sequence: bool,
    dense: Vec<(usize, usize)>,
    seed: u64,
}

fn layer_choice(allow_window: bool) -> impl Strategy<Value = LayerChoice> {
    (
        0..CELLS.len(),
        1usize..9,
        0..CELL_ACTIVATIONS.len(),
        0..CELL_ACTIVATIONS.len(),
        any::<bool>(),
        prop::option::weighted(0.3, 0usize..4),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            move |(
                cell,
                units,
                activation,
                recurrent_activation,
                use_bias,
                merge,
                go_backwards,
            )| {
                LayerChoice {
                    cell,
                    units,
                    activation,
                    recurrent_activation,
                    use_bias,
                    go_backwards: allow_window && go_backwards && merge.is_none(),
                    merge: merge.filter(|_| allow_window),
                }
            },
        )
}

fn model_choice(allow_window: bool) -> impl Strategy<Value = ModelChoice> {
    (
        1usize..6,
        prop::collection::vec(layer_choice(allow_window), 1..4),
        any::<bool>(),
        prop::collection::vec((1usize..6, 0..DENSE_ACTIVATIONS.len()), 0..3),
        any::<u64>(),
    )
        .prop_map(
            |(features, recurrent, last_returns_sequence, dense, seed)| ModelChoice {
                features,
                recurrent,
                last_returns_sequence,
                dense,
                seed,
            },
        )
}

/// A small deterministic generator (splitmix64) so a failing case replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

fn build(choice: &ModelChoice) -> Vec<u8> {
    let mut rng = Rng(choice.seed);
    let mut builder = ModelBuilder::new(choice.features);
    let mut width = choice.features;
    let n = choice.recurrent.len();
    for (i, l) in choice.recurrent.iter().enumerate() {
        let cell = CELLS[l.cell];
        let rows = cell.gates() * l.units;
        let mut weights = || KerasWeights {
            kernel: rng.vec(width * rows, 1.0 / (width as f32).sqrt()),
            recurrent_kernel: rng.vec(l.units * rows, 1.0 / (l.units as f32).sqrt()),
            bias: l.use_bias.then(|| {
                let n = if matches!(cell, Cell::Gru { reset_after: true }) {
                    2 * rows
                } else {
                    rows
                };
                rng.vec(n, 0.5)
            }),
        };
        let forward = weights();
        let merge = l
            .merge
            .map(|m| [Merge::Concat, Merge::Sum, Merge::Mul, Merge::Ave][m]);
        let backward = merge.map(|_| weights());
        let spec = RecurrentSpec {
            cell,
            units: l.units,
            activation: CELL_ACTIVATIONS[l.activation],
            recurrent_activation: CELL_ACTIVATIONS[l.recurrent_activation],
            return_sequences: i + 1 < n || choice.last_returns_sequence,
            go_backwards: l.go_backwards,
            bidirectional: merge,
        };
        builder
            .recurrent(spec, &forward, backward.as_ref())
            .unwrap();
        width = if merge == Some(Merge::Concat) {
            2 * l.units
        } else {
            l.units
        };
    }
    for &(units, act) in &choice.dense {
        let kernel = rng.vec(width * units, 1.0);
        let bias = rng.vec(units, 0.5);
        builder
            .dense(units, DENSE_ACTIVATIONS[act], &kernel, Some(&bias))
            .unwrap();
        width = units;
    }
    builder.build().unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn run_sequence(model: &Model, xs: &[f32], state: &mut [f32]) -> Vec<f32> {
    let t = xs.len() / model.input_features();
    let mut scratch = vec![0.0; model.sequence_scratch_len(t).unwrap()];
    let mut out = vec![0.0; model.output_len(t).unwrap()];
    model
        .run_sequence(xs, state, &mut scratch, &mut out)
        .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_sequence(choice in model_choice(false), steps in 1usize..12, input_seed in any::<u64>()) {
        let blob = aligned(&build(&choice));
        let model = Model::from_bytes(blob.bytes()).unwrap();
        prop_assert!(model.is_streamable());
        let xs = Rng(input_seed).vec(steps * choice.features, 2.0);
        let mut seq_state = vec![0.0; model.state_len()];
        let seq = run_sequence(&model, &xs, &mut seq_state);

        let mut state = vec![0.0; model.state_len()];
        // Dirty scratch must not matter: the step overwrites what it reads.
        let mut scratch = vec![f32::NAN; model.step_scratch_len()];
        let w = model.output_width();
        let mut y = vec![0.0; w];
        for (t, x) in xs.chunks(choice.features).enumerate() {
            model.step(x, &mut state, &mut scratch, &mut y).unwrap();
            if model.output_is_sequence() {
                prop_assert_eq!(bits(&y), bits(&seq[t * w..(t + 1) * w]));
            }
        }
        if !model.output_is_sequence() {
            prop_assert_eq!(bits(&y), bits(&seq));
        }
        prop_assert_eq!(bits(&state), bits(&seq_state));
    }

    #[test]
    fn save_and_restore_continue_identically(choice in model_choice(false), steps in 2usize..12, cut in 1usize..11, input_seed in any::<u64>()) {
        let cut = cut.min(steps - 1);
        let blob = aligned(&build(&choice));
        let model = Model::from_bytes(blob.bytes()).unwrap();
        let xs = Rng(input_seed).vec(steps * choice.features, 2.0);
        let (head, tail) = xs.split_at(cut * choice.features);

        let mut whole_state = vec![0.0; model.state_len()];
        let whole = run_sequence(&model, &xs, &mut whole_state);

        let mut state = vec![0.0; model.state_len()];
        run_sequence(&model, head, &mut state);
        // "Deep sleep": the state leaves as bytes and comes back into a fresh buffer.
        let saved: Vec<u8> = state.iter().flat_map(|v| v.to_le_bytes()).collect();
        drop(state);
        let mut restored: Vec<f32> = saved.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let rest = run_sequence(&model, tail, &mut restored);

        let w = model.output_width();
        let expected_tail = if model.output_is_sequence() { &whole[cut * w..] } else { &whole[..] };
        prop_assert_eq!(bits(&rest), bits(expected_tail));
        prop_assert_eq!(bits(&restored), bits(&whole_state));
    }

    #[test]
    fn window_models_refuse_to_step_and_run_whole(choice in model_choice(true), steps in 1usize..10, input_seed in any::<u64>()) {
        let blob = aligned(&build(&choice));
        let model = Model::from_bytes(blob.bytes()).unwrap();
        let xs = Rng(input_seed).vec(steps * choice.features, 2.0);
        let mut state = vec![0.0; model.state_len()];
        let out = run_sequence(&model, &xs, &mut state);
        prop_assert_eq!(out.len(), model.output_len(steps).unwrap());
        if !model.is_streamable() {
            let mut scratch = vec![0.0; model.step_scratch_len()];
            let mut y = vec![0.0; model.output_width()];
            let mut state = vec![0.0; model.state_len()];
            prop_assert_eq!(
                model.step(&xs[..choice.features], &mut state, &mut scratch, &mut y),
                Err(edgernn::RunError::NotStreamable)
            );
        }
    }

    #[test]
    fn random_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let blob = aligned(&bytes);
        prop_assert!(Model::from_bytes(blob.bytes()).is_err());
    }

    #[test]
    fn damaged_blobs_are_refused(choice in model_choice(true), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let good = build(&choice);
        let truncated = &good[..cut.index(good.len())];
        let blob = aligned(truncated);
        prop_assert!(Model::from_bytes(blob.bytes()).is_err());

        let mut flipped = good.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 1 << bit;
        let blob = aligned(&flipped);
        // A single flipped bit is always caught (CRC-32 detects all 1-bit errors).
        prop_assert!(Model::from_bytes(blob.bytes()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Corruption that keeps a valid checksum (as a buggy writer or a fuzzer would make) reaches
    /// the header and shape validation: loading may succeed or fail, but nothing panics, and a
    /// model that loads also runs without panicking.
    #[test]
    fn resealed_corruption_never_panics(
        choice in model_choice(true),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        header_only in any::<bool>(),
    ) {
        use edgernn::format::{blob_crc, CRC_OFFSET, PREAMBLE_LEN};
        let mut bytes = build(&choice);
        let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        for (at, value) in edits {
            let at = if header_only {
                PREAMBLE_LEN + at.index(header_len)
            } else {
                at.index(bytes.len())
            };
            if !(CRC_OFFSET..CRC_OFFSET + 4).contains(&at) {
                bytes[at] = value;
            }
        }
        let crc = blob_crc(&bytes);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        let blob = aligned(&bytes);
        if let Ok(model) = Model::from_bytes(blob.bytes()) {
            let steps = 3;
            if model.input_features() <= 64 && model.state_len() <= 1 << 16 {
                let xs = vec![0.5; steps * model.input_features()];
                let mut state = vec![0.0; model.state_len()];
                let _ = run_sequence(&model, &xs, &mut state);
            }
        }
        drop(blob);
    }
}

/// Rejections must name the right check; the CRC is recomputed after tampering so the
/// validation behind it is reached.
#[test]
fn tampered_blobs_name_the_failed_check() {
    use edgernn::format::{blob_crc, CRC_OFFSET};
    let choice = ModelChoice {
        features: 3,
        recurrent: vec![LayerChoice {
            cell: 1,
            units: 4,
            activation: 0,
            recurrent_activation: 1,
            use_bias: true,
            merge: None,
            go_backwards: false,
        }],
        last_returns_sequence: false,
        dense: vec![(2, 5)],
        seed: 7,
    };
    let good = build(&choice);
    let load = |bytes: &[u8]| {
        let blob = aligned(bytes);
        Model::from_bytes(blob.bytes()).map(|_| ())
    };
    let reseal = |mut bytes: Vec<u8>| {
        let crc = blob_crc(&bytes);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        bytes
    };
    assert_eq!(load(&good), Ok(()));
    // Trailing bytes beyond the declared length (flash padding) are ignored.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xFF; 100]);
    assert_eq!(load(&padded), Ok(()));

    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(load(&bad), Err(LoadError::BadMagic));

    // Format versions 2 (extensions) and 3 (flags) exist; the first unknown one is 4.
    let mut bad = good.clone();
    bad[4] = 4;
    assert_eq!(
        load(&reseal(bad)),
        Err(LoadError::UnsupportedVersion { found: 4 })
    );

    // Flags only from version 3 on (this blob is version 1).
    let mut bad = good.clone();
    bad[6] = 1;
    assert_eq!(load(&reseal(bad)), Err(LoadError::BadFlags { flags: 1 }));

    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    assert!(matches!(
        load(&bad),
        Err(LoadError::ChecksumMismatch { .. })
    ));

    assert!(matches!(
        load(&good[..good.len() - 4]),
        Err(LoadError::Truncated { .. })
    ));
    assert!(matches!(
        load(&good[..10]),
        Err(LoadError::Truncated { .. })
    ));

    // Weight length not matching the declared total.
    let mut bad = good.clone();
    bad[20] = bad[20].wrapping_add(4);
    assert_eq!(load(&reseal(bad)), Err(LoadError::BadLayout));

    // The header: input_features is the second header byte (after the dtype).
    let mut bad = good.clone();
    bad[33] = 0;
    assert_eq!(load(&reseal(bad)), Err(LoadError::BadWidth { layer: 0 }));
    let mut bad = good.clone();
    bad[33] = 4;
    assert_eq!(load(&reseal(bad)), Err(LoadError::WeightShape { layer: 0 }));

    // A header that does not decode.
    let mut bad = good.clone();
    bad[32] = 9;
    assert_eq!(load(&reseal(bad)), Err(LoadError::HeaderDecode));

    // Misaligned in memory: the same bytes one byte off a 16-byte boundary.
    let mut shifted = vec![0u8; good.len() + 1];
    shifted[1..].copy_from_slice(&good);
    let holder = aligned(&shifted);
    assert_eq!(
        Model::from_bytes(&holder.bytes()[1..]).map(|_| ()),
        Err(LoadError::MisalignedWeights)
    );
}
