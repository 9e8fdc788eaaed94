//! Grey levels of the image: a CT window (soft tissue W400/L40 by default, bone or
//! lung on request) or, for MRI, the 1st–99th percentile of the values shown.

use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::labels::Modality;

/// The window a caller asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WindowChoice {
    /// CT soft tissue for CT (by modality, or values below -200 in the shown planes),
    /// else the percentile window.
    #[default]
    Auto,
    /// CT W400/L40.
    SoftTissue,
    /// CT W1800/L400.
    Bone,
    /// CT W1500/L-600.
    Lung,
    /// 1st–99th percentile of the shown planes (MRI).
    Percentile,
}

impl WindowChoice {
    pub(crate) const NAMES: &'static str = "auto, soft_tissue, bone, lung, percentile";

    fn as_str(self) -> &'static str {
        match self {
            WindowChoice::Auto => "auto",
            WindowChoice::SoftTissue => "soft_tissue",
            WindowChoice::Bone => "bone",
            WindowChoice::Lung => "lung",
            WindowChoice::Percentile => "percentile",
        }
    }

    /// (width, level) of the fixed CT windows.
    fn ct(self) -> Option<(f64, f64)> {
        match self {
            WindowChoice::SoftTissue => Some((400.0, 40.0)),
            WindowChoice::Bone => Some((1800.0, 400.0)),
            WindowChoice::Lung => Some((1500.0, -600.0)),
            _ => None,
        }
    }
}

/// A window name that is none of [`WindowChoice::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("window: '{0}' is not a window; use one of auto, soft_tissue, bone, lung, percentile")]
pub(crate) struct ParseWindowError(pub String);

impl FromStr for WindowChoice {
    type Err = ParseWindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            WindowChoice::Auto,
            WindowChoice::SoftTissue,
            WindowChoice::Bone,
            WindowChoice::Lung,
            WindowChoice::Percentile,
        ];
        all.into_iter()
            .find(|w| w.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseWindowError(s.to_string()))
    }
}

/// The window applied: what was chosen and the value range mapped to black..white.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub(crate) struct Window {
    pub kind: WindowChoice,
    pub low: f64,
    pub high: f64,
}

impl Window {
    /// Settle `choice` for an image whose shown values are `values`.
    pub(crate) fn settle(
        choice: WindowChoice,
        modality: Option<Modality>,
        values: &[f32],
    ) -> Window {
        let kind = match (choice, modality) {
            (WindowChoice::Auto, Some(Modality::CtBody)) => WindowChoice::SoftTissue,
            (WindowChoice::Auto, Some(_)) => WindowChoice::Percentile,
            (WindowChoice::Auto, None) if values.iter().any(|v| *v < -200.0) => {
                WindowChoice::SoftTissue
            }
            (WindowChoice::Auto, None) => WindowChoice::Percentile,
            (other, _) => other,
        };
        let (low, high) = match kind.ct() {
            Some((width, level)) => (level - width / 2.0, level + width / 2.0),
            None => percentiles(values),
        };
        Window { kind, low, high }
    }

    /// A value's grey level (NaN is black).
    pub(crate) fn grey(&self, v: f32) -> u8 {
        if !v.is_finite() {
            return 0;
        }
        let t = (f64::from(v) - self.low) / (self.high - self.low).max(f64::MIN_POSITIVE);
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }

    /// e.g. `soft tissue W400/L40`, `percentile 1-99 [12.0, 840.5]`.
    pub(crate) fn describe(&self) -> String {
        match self.kind.ct() {
            Some((w, l)) => format!("{} W{w}/L{l}", self.kind.as_str().replace('_', " ")),
            None => format!("percentile 1-99 [{:.1}, {:.1}]", self.low, self.high),
        }
    }
}

/// The 1st and 99th percentiles of the finite values (0, 1 when there are none).
fn percentiles(values: &[f32]) -> (f64, f64) {
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    let last = finite.len() - 1;
    let at = |q: f64| ((last as f64) * q).round() as usize;
    let (lo_i, hi_i) = (at(0.01), at(0.99));
    let low = *finite.select_nth_unstable_by(lo_i, f32::total_cmp).1;
    let high = *finite.select_nth_unstable_by(hi_i, f32::total_cmp).1;
    (f64::from(low), f64::from(high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_windows_map_their_ends_to_black_and_white() {
        let w = Window::settle(WindowChoice::Auto, None, &[-1000.0, 50.0]);
        assert_eq!(w.kind, WindowChoice::SoftTissue);
        assert_eq!((w.low, w.high), (-160.0, 240.0));
        assert_eq!((w.grey(-160.0), w.grey(240.0), w.grey(40.0)), (0, 255, 128));
        let bone = Window::settle(WindowChoice::Bone, Some(Modality::MriBody), &[]);
        assert_eq!((bone.low, bone.high), (-500.0, 1300.0));
        assert_eq!("LUNG".parse::<WindowChoice>().unwrap(), WindowChoice::Lung);
        assert!("ct"
            .parse::<WindowChoice>()
            .unwrap_err()
            .to_string()
            .contains("soft_tissue"));
    }

    #[test]
    fn mri_uses_the_first_and_99th_percentile() {
        let values: Vec<f32> = (0..=1000).map(|v| v as f32).collect();
        let w = Window::settle(WindowChoice::Auto, Some(Modality::MriBody), &values);
        assert_eq!(w.kind, WindowChoice::Percentile);
        assert_eq!((w.low, w.high), (10.0, 990.0));
        assert_eq!(w.grey(5.0), 0);
        assert_eq!(w.grey(f32::NAN), 0);
    }
}
