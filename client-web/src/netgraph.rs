//! The small graphs of the F3 overlay: RTT, jitter, interpolation delay, corrections and
//! snapshot sizes against the server's byte budget, over the last few seconds. The series are
//! plain Rust (tested natively); drawing them on the overlay's canvas is wasm-only.

use std::collections::VecDeque;

/// Samples kept per series (about four seconds of frames at 60 Hz).
pub const SAMPLES: usize = 240;

/// One graph: recent values and, for snapshot sizes, the limit drawn as a line.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: &'static str,
    pub unit: &'static str,
    samples: VecDeque<f32>,
    /// A line to draw across the graph (the byte budget); it also sets the scale.
    pub limit: Option<f32>,
}

impl Series {
    fn new(label: &'static str, unit: &'static str) -> Series {
        Series { label, unit, samples: VecDeque::with_capacity(SAMPLES), limit: None }
    }

    pub fn push(&mut self, value: f32) {
        if self.samples.len() >= SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(if value.is_finite() { value.max(0.0) } else { 0.0 });
    }

    pub fn samples(&self) -> impl ExactSizeIterator<Item = f32> + '_ {
        self.samples.iter().copied()
    }

    pub fn last(&self) -> f32 {
        self.samples.back().copied().unwrap_or(0.0)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The top of the graph's scale: the largest sample or 1.2× the limit, never below `floor`
    /// (so a quiet link draws a flat line low in its graph, not noise blown up to full height).
    pub fn scale(&self, floor: f32) -> f32 {
        let top = self.samples.iter().copied().fold(0.0f32, f32::max);
        top.max(self.limit.map_or(0.0, |l| l * 1.2)).max(floor)
    }

    /// Samples above the limit.
    pub fn over_limit(&self) -> usize {
        self.limit.map_or(0, |limit| self.samples.iter().filter(|v| **v > limit).count())
    }
}

/// The overlay's graphs.
#[derive(Debug, Clone)]
pub struct NetGraphs {
    pub rtt: Series,
    pub jitter: Series,
    pub delay: Series,
    pub corrections: Series,
    pub snapshot_bytes: Series,
}

impl NetGraphs {
    /// `budget`: the server's per-snapshot byte budget, drawn on the snapshot-size graph.
    pub fn new(budget: Option<u32>) -> NetGraphs {
        let mut snapshot_bytes = Series::new("snapshot", "B");
        snapshot_bytes.limit = budget.map(|b| b as f32);
        NetGraphs {
            rtt: Series::new("rtt", "ms"),
            jitter: Series::new("jitter", "ms"),
            delay: Series::new("interp", "ms"),
            corrections: Series::new("correct", "u"),
            snapshot_bytes,
        }
    }

    /// One frame's figures: RTT, jitter and interpolation delay in ms, and the largest
    /// correction this frame in world units.
    pub fn frame(&mut self, rtt_ms: f64, jitter_ms: f64, delay_ms: f64, correction: f32) {
        self.rtt.push(rtt_ms as f32);
        self.jitter.push(jitter_ms as f32);
        self.delay.push(delay_ms as f32);
        self.corrections.push(correction);
    }

    /// One snapshot's size on the wire, bytes.
    pub fn snapshot(&mut self, bytes: usize) {
        self.snapshot_bytes.push(bytes as f32);
    }

    /// The graphs top to bottom, with the smallest scale each is drawn at.
    pub fn rows(&self) -> [(&Series, f32); 5] {
        [
            (&self.rtt, 50.0),
            (&self.jitter, 10.0),
            (&self.delay, 50.0),
            (&self.corrections, 2.0),
            (&self.snapshot_bytes, 200.0),
        ]
    }
}

/// Draws the graphs on the overlay's canvas: one row each, label and latest value on the left,
/// the samples as a line, the budget as a dashed red line.
#[cfg(target_arch = "wasm32")]
pub fn draw(canvas: &web_sys::HtmlCanvasElement, graphs: &NetGraphs) {
    use wasm_bindgen::JsCast;
    let Some(ctx) =
        canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let (width, height) = (f64::from(canvas.width()), f64::from(canvas.height()));
    ctx.clear_rect(0.0, 0.0, width, height);
    let rows = graphs.rows();
    let row_height = height / rows.len() as f64;
    let label_width = 92.0;
    let plot_width = width - label_width - 4.0;
    ctx.set_font("11px ui-monospace, monospace");
    for (index, (series, floor)) in rows.iter().enumerate() {
        let top = index as f64 * row_height;
        let bottom = top + row_height - 3.0;
        let scale = f64::from(series.scale(*floor));
        let y_of = |value: f64| bottom - (value / scale).min(1.0) * (row_height - 6.0);
        ctx.set_fill_style_str("rgba(255,255,255,0.06)");
        ctx.fill_rect(label_width, top + 1.0, plot_width, row_height - 3.0);
        ctx.set_fill_style_str("#7ee787");
        let _ = ctx.fill_text(
            &format!("{:<7}{:>6.1}{}", series.label, series.last(), series.unit),
            2.0,
            top + row_height * 0.65,
        );
        if let Some(limit) = series.limit {
            ctx.set_stroke_style_str("#f85149");
            let _ = ctx.set_line_dash(&js_sys::Array::of2(&4.0.into(), &3.0.into()));
            ctx.begin_path();
            ctx.move_to(label_width, y_of(f64::from(limit)));
            ctx.line_to(label_width + plot_width, y_of(f64::from(limit)));
            ctx.stroke();
            let _ = ctx.set_line_dash(&js_sys::Array::new());
        }
        if series.is_empty() {
            continue;
        }
        ctx.set_stroke_style_str("#4dd0e1");
        ctx.begin_path();
        let step = plot_width / (SAMPLES - 1) as f64;
        let start = label_width + plot_width - step * (series.len() - 1) as f64;
        for (i, value) in series.samples().enumerate() {
            let (x, y) = (start + step * i as f64, y_of(f64::from(value)));
            if i == 0 {
                ctx.move_to(x, y);
            } else {
                ctx.line_to(x, y);
            }
        }
        ctx.stroke();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keep_the_latest_samples_and_scale_to_them_or_the_limit() {
        let mut graphs = NetGraphs::new(Some(1400));
        for i in 0..(SAMPLES + 10) {
            graphs.frame(150.0 + i as f64, 5.0, 80.0, 0.0);
            graphs.snapshot(600 + i);
        }
        assert_eq!(graphs.rtt.len(), SAMPLES, "bounded");
        assert_eq!(graphs.rtt.last(), (150 + SAMPLES + 9) as f32);
        assert_eq!(graphs.snapshot_bytes.scale(200.0), 1400.0 * 1.2, "the budget line stays on the graph");
        assert_eq!(graphs.snapshot_bytes.over_limit(), 0);
        graphs.snapshot(1500);
        assert_eq!(graphs.snapshot_bytes.over_limit(), 1);
        assert_eq!(graphs.corrections.scale(2.0), 2.0, "a quiet graph keeps its floor");
        graphs.frame(f64::NAN, -3.0, 0.0, f32::INFINITY);
        assert_eq!((graphs.rtt.last(), graphs.jitter.last(), graphs.corrections.last()), (0.0, 0.0, 0.0));
    }
}
