//! The detector on a naive forecaster (`SimpleRNN(1, linear)` with kernel 1: the forecast is
//! the last sample of the window), whose errors are easy to reason about.

use super::*;
use std::boxed::Box;

use crate::format::test_blob::{blob, Buf, Weights};
use crate::format::{Activation, Cell, DirectionWeights, Extensions, Layer, RecurrentLayer};

fn params() -> DetectorParams {
    DetectorParams {
        window: 4,
        forecasts_change: false,
        short_window: 1,
        long_window: 500,
        warmup: 10,
        flag_on: 0.5,
        flag_off: 0.3,
        refractory: 20,
    }
}

/// The naive forecaster with `detector` in its header.
fn naive_forecaster(detector: Option<DetectorParams>) -> (Box<Buf>, usize) {
    let mut weights = Weights::default();
    let layer = Layer::Recurrent(RecurrentLayer {
        cell: Cell::SimpleRnn,
        units: 1,
        activation: Activation::Linear,
        recurrent_activation: Activation::Sigmoid,
        return_sequences: false,
        go_backwards: false,
        bidirectional: None,
        forward: DirectionWeights {
            kernel: weights.push(&[1.0]),
            recurrent_kernel: weights.push(&[0.0]),
            bias: None,
            recurrent_bias: None,
            kernel_scale: None,
            recurrent_scale: None,
            reset_scale: None,
        },
        backward: None,
        quant: None,
    });
    let extensions = Extensions {
        detector,
        vocabulary: None,
    };
    blob(1, &[layer], &weights, extensions)
}

/// Runs `samples` through a fresh detector and returns every detection.
fn detect_all(p: DetectorParams, samples: &[f32]) -> std::vec::Vec<Detection> {
    let (buf, len) = naive_forecaster(Some(p));
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    let mut detector = Detector::<8>::for_model(&model).expect("fits");
    let mut state = [0.0f32; 8];
    let mut scratch = [0.0f32; 64];
    let state = &mut state[..model.state_len()];
    samples
        .iter()
        .map(|&x| {
            detector
                .update(&model, x, state, &mut scratch)
                .expect("runs")
        })
        .collect()
}

/// A deterministic noisy signal: a slow sine plus pseudo-random noise of amplitude 0.1.
fn noisy(n: usize) -> std::vec::Vec<f32> {
    let mut seed = 12345u32;
    (0..n)
        .map(|t| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            libm::sinf(t as f32 * 0.05) + 0.2 * noise
        })
        .collect()
}

#[test]
fn blob_round_trips_the_parameters_as_version_2() {
    let (buf, len) = naive_forecaster(Some(params()));
    assert_eq!(u16::from_le_bytes([buf.0[4], buf.0[5]]), 2);
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    assert_eq!(model.detector_params(), Some(params()));
    let (plain, plain_len) = naive_forecaster(None);
    assert_eq!(u16::from_le_bytes([plain.0[4], plain.0[5]]), 1);
    let model = Model::from_bytes(&plain.0[..plain_len]).expect("loads");
    assert_eq!(model.detector_params(), None);
    assert_eq!(
        Detector::<8>::for_model(&model).err(),
        Some(DetectError::NoParams)
    );
}

#[test]
fn out_of_range_parameters_are_refused_at_load() {
    let bad = [
        DetectorParams {
            window: 0,
            ..params()
        },
        DetectorParams {
            short_window: 0,
            ..params()
        },
        DetectorParams {
            short_window: MAX_SHORT_WINDOW as u32 + 1,
            ..params()
        },
        DetectorParams {
            long_window: 0,
            ..params()
        },
        DetectorParams {
            flag_on: 1.5,
            ..params()
        },
        DetectorParams {
            flag_off: 0.6,
            ..params()
        },
        DetectorParams {
            flag_on: f32::NAN,
            ..params()
        },
    ];
    for p in bad {
        let (buf, len) = naive_forecaster(Some(p));
        assert_eq!(
            Model::from_bytes(&buf.0[..len]).err(),
            Some(LoadError::BadExtension),
            "{p:?}"
        );
    }
}

#[test]
fn window_larger_than_capacity_is_an_error() {
    let p = DetectorParams {
        window: 9,
        ..params()
    };
    assert_eq!(
        Detector::<8>::new(p).err(),
        Some(DetectError::WindowTooLarge {
            window: 9,
            capacity: 8
        })
    );
}

#[test]
fn forecasts_start_once_the_window_fills_and_use_the_last_sample() {
    let out = detect_all(params(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let forecasts: std::vec::Vec<_> = out.iter().map(|d| d.forecast).collect();
    assert_eq!(
        forecasts,
        [None, None, None, None, Some(4.0), Some(5.0)],
        "the naive model forecasts the window's last sample"
    );
    assert!(out.iter().all(|d| d.score == 0.0 && !d.flag));
}

#[test]
fn a_spike_in_noise_raises_one_alarm_then_the_refractory_period_holds() {
    let mut samples = noisy(600);
    samples[400] += 3.0;
    let out = detect_all(params(), &samples);
    assert!(out[..400].iter().all(|d| !d.alarm), "no alarm on noise");
    assert!(out[400].alarm && out[400].score > 0.9, "{:?}", out[400]);
    // The spike also makes the next forecast wrong, but that is the same event.
    assert!(out[401].raw_score > 0.5 && out[401].score == 0.0);
    let alarms = out.iter().filter(|d| d.alarm).count();
    assert_eq!(alarms, 1);
    assert!(out.iter().all(|d| (0.0..=1.0).contains(&d.score)));
}

#[test]
fn the_flag_falls_below_flag_off() {
    let mut samples = noisy(600);
    samples[400] += 3.0;
    let out = detect_all(params(), &samples);
    let fall = (401..600).find(|&t| !out[t].flag).expect("flag falls");
    assert!(out[fall].raw_score < 0.3);
    assert!((400..fall).all(|t| out[t].flag));
}

#[test]
fn a_flat_signal_does_not_alarm_on_tiny_changes() {
    let mut samples = std::vec![5.0f32; 300];
    for (t, s) in samples.iter_mut().enumerate().skip(200) {
        *s += if t % 2 == 0 { 1e-6 } else { 0.0 };
    }
    let out = detect_all(params(), &samples);
    assert!(out.iter().all(|d| !d.alarm));
}

#[test]
fn non_finite_samples_are_refused_and_change_nothing() {
    let (buf, len) = naive_forecaster(Some(params()));
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    let mut detector = Detector::<8>::for_model(&model).expect("fits");
    let mut state = [0.0f32; 1];
    let mut scratch = [0.0f32; 64];
    for x in noisy(50) {
        detector
            .update(&model, x, &mut state, &mut scratch)
            .expect("runs");
    }
    let before = detector.clone();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(
            detector.update(&model, bad, &mut state, &mut scratch),
            Err(DetectError::NonFinite)
        );
    }
    let mut tiny = [0.0f32; 1];
    assert!(matches!(
        detector.update(&model, 1.0, &mut state, &mut tiny[..0]),
        Err(DetectError::Run(_))
    ));
    assert_eq!(detector, before);

    // The same while the window is still filling: the run that would fill it fails.
    let mut filling = Detector::<8>::for_model(&model).expect("fits");
    for x in [1.0, 2.0, 3.0] {
        filling
            .update(&model, x, &mut state, &mut scratch)
            .expect("runs");
    }
    let before = filling.clone();
    assert!(matches!(
        filling.update(&model, 4.0, &mut state, &mut tiny[..0]),
        Err(DetectError::Run(_))
    ));
    assert_eq!(filling, before);
}

#[test]
fn saved_and_restored_detectors_continue_identically() {
    let samples = noisy(400);
    let whole = detect_all(params(), &samples);
    let (buf, len) = naive_forecaster(Some(params()));
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    let mut first = Detector::<8>::for_model(&model).expect("fits");
    let (mut state, mut scratch) = ([0.0f32; 1], [0.0f32; 64]);
    for &x in &samples[..250] {
        first
            .update(&model, x, &mut state, &mut scratch)
            .expect("runs");
    }
    let mut resumed = first.clone();
    for (t, &x) in samples.iter().enumerate().skip(250) {
        let d = resumed
            .update(&model, x, &mut state, &mut scratch)
            .expect("runs");
        assert_eq!(d, whole[t]);
    }
}

#[test]
fn change_forecasts_add_the_last_sample() {
    // The naive model outputs its last input; read as a change, the forecast is twice it.
    let p = DetectorParams {
        forecasts_change: true,
        ..params()
    };
    let out = detect_all(p, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let forecasts: std::vec::Vec<_> = out.iter().map(|d| d.forecast).collect();
    assert_eq!(forecasts, [None, None, None, None, Some(8.0), Some(10.0)]);
}
