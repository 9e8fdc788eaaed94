//! Laying out and drawing the montage: one row per shown structure, its axial,
//! coronal and sagittal planes through its centroid, the mask blended over the
//! windowed image with a 1-pixel outline, a legend line per row, orientation letters
//! on every panel and "NOT FOR CLINICAL USE" in the header.

use schemars::JsonSchema;
use serde::Serialize;

use super::canvas::{Canvas, Rgb};
use super::planes::Planes;
use super::view::{Orientation, View};
use super::window::Window;

const MARGIN: u32 = 8;
const GAP: u32 = 8;
const HEADER: u32 = 28;
const COLUMN_TITLES: u32 = 16;
const ROW_LABEL: u32 = 20;
const FOOTER: u32 = 18;
/// Weight of a label's colour over the image inside the structure.
const FILL_ALPHA: f32 = 0.45;
const BACKGROUND: Rgb = [16, 16, 16];
const TEXT: Rgb = [230, 230, 230];
const WARNING: Rgb = [255, 80, 64];
const LETTERS: Rgb = [255, 220, 0];

/// A structure drawn in a row.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub(crate) struct Shown {
    pub id: u32,
    pub name: String,
    pub volume_ml: f64,
    pub colour: Rgb,
    pub centroid_voxel: [f64; 3],
}

/// Where a panel lies in the picture.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub(crate) struct Panel {
    pub view: View,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The voxel axis held fixed and its index.
    pub plane: [usize; 2],
    /// The picture pixel showing the structure's centroid voxel.
    pub centroid_px: [u32; 2],
}

/// What the picture needs besides the planes.
pub(super) struct Scene<'a> {
    pub shape: [usize; 3],
    pub spacing: [f64; 3],
    pub orientation: Orientation,
    pub rows: &'a [Shown],
    pub window: Option<Window>,
    pub colour_of: &'a dyn Fn(u32) -> Rgb,
    pub footer: String,
}

/// The plane (voxel axis, index) a view of a structure needs.
pub(super) fn plane_of(
    scene_shape: [usize; 3],
    o: &Orientation,
    view: View,
    centroid: [f64; 3],
) -> (usize, usize) {
    // Rounded toward the world axis' positive end at a half voxel, so the same
    // patient stored in either direction gets the same plane.
    let axes = o.axes(view);
    let axis = axes.normal;
    let last = scene_shape[axis].saturating_sub(1) as f64;
    let c = centroid[axis].clamp(0.0, last);
    let index = if axes.normal_reversed {
        last - (last - c).round()
    } else {
        c.round()
    };
    (axis, index as usize)
}

/// Draw the montage at `cell` pixels per panel box.
pub(super) fn draw(
    scene: &Scene<'_>,
    mask: &Planes,
    image: Option<&Planes>,
    cell: u32,
) -> (Canvas, Vec<Vec<Panel>>) {
    let rows = scene.rows.len().max(1) as u32;
    let width = 2 * MARGIN + 3 * cell + 2 * GAP;
    let height = HEADER + COLUMN_TITLES + rows * (ROW_LABEL + cell + GAP) + FOOTER;
    let mut canvas = Canvas::new(width, height, BACKGROUND);
    header(&mut canvas, scene.window.as_ref());
    for (i, view) in View::ALL.iter().enumerate() {
        let x = MARGIN + i as u32 * (cell + GAP);
        canvas.text(x as f32, HEADER as f32, 12.0, TEXT, view.as_str());
    }
    let extent = (0..3)
        .map(|a| scene.shape[a] as f64 * scene.spacing[a])
        .fold(f64::MIN_POSITIVE, f64::max);
    let mm_per_px = extent / f64::from(cell);
    let mut panels = Vec::new();
    for (r, shown) in scene.rows.iter().enumerate() {
        let top = HEADER + COLUMN_TITLES + r as u32 * (ROW_LABEL + cell + GAP);
        legend(&mut canvas, top, shown);
        let mut row = Vec::new();
        for (i, view) in View::ALL.iter().enumerate() {
            let cell_x = MARGIN + i as u32 * (cell + GAP);
            let key = plane_of(scene.shape, &scene.orientation, *view, shown.centroid_voxel);
            let placed = PanelDraw {
                scene,
                view: *view,
                plane: key,
                mm_per_px,
                cell,
                cell_x,
                cell_y: top + ROW_LABEL,
            };
            row.push(placed.draw(&mut canvas, mask, image, shown.centroid_voxel));
        }
        panels.push(row);
    }
    canvas.text(
        MARGIN as f32,
        (height - FOOTER + 3) as f32,
        10.0,
        TEXT,
        &scene.footer,
    );
    (canvas, panels)
}

fn header(canvas: &mut Canvas, window: Option<&Window>) {
    let w = canvas.text(MARGIN as f32, 5.0, 16.0, WARNING, "NOT FOR CLINICAL USE");
    let right = match window {
        Some(w) => format!("window: {}", w.describe()),
        None => "no image: mask only".to_string(),
    };
    let rw = Canvas::text_width(11.0, &right);
    let x = (canvas.width as f32 - MARGIN as f32 - rw).max(MARGIN as f32 + w + 8.0);
    canvas.text(x, 8.0, 11.0, TEXT, &right);
}

fn legend(canvas: &mut Canvas, top: u32, shown: &Shown) {
    canvas.fill_rect(i64::from(MARGIN), i64::from(top + 4), 12, 12, shown.colour);
    let text = format!("{}  {}  {:.1} mL", shown.id, shown.name, shown.volume_ml);
    canvas.text((MARGIN + 18) as f32, (top + 3) as f32, 13.0, TEXT, &text);
}

struct PanelDraw<'a, 'b> {
    scene: &'a Scene<'b>,
    view: View,
    plane: (usize, usize),
    mm_per_px: f64,
    cell: u32,
    cell_x: u32,
    cell_y: u32,
}

impl PanelDraw<'_, '_> {
    /// Panel pixel (column or row) → voxel index along `axis` (nearest neighbour).
    fn voxel(&self, px: u32, axis: usize, reversed: bool) -> usize {
        let n = self.scene.shape[axis];
        let i = (((f64::from(px) + 0.5) * self.mm_per_px / self.scene.spacing[axis]) as usize)
            .min(n - 1);
        if reversed {
            n - 1 - i
        } else {
            i
        }
    }

    /// Voxel index along `axis` → the panel pixel showing it.
    fn pixel(&self, index: f64, axis: usize, reversed: bool, size: u32) -> u32 {
        let n = self.scene.shape[axis] as f64;
        let i = index.round().clamp(0.0, n - 1.0);
        let d = if reversed { n - 1.0 - i } else { i };
        (((d + 0.5) * self.scene.spacing[axis] / self.mm_per_px) as u32).min(size - 1)
    }

    fn draw(
        &self,
        canvas: &mut Canvas,
        mask: &Planes,
        image: Option<&Planes>,
        centroid: [f64; 3],
    ) -> Panel {
        let axes = self.scene.orientation.axes(self.view);
        let (c, r) = (axes.columns, axes.rows);
        let size = |axis: usize| {
            let mm = self.scene.shape[axis] as f64 * self.scene.spacing[axis];
            ((mm / self.mm_per_px).round() as u32).clamp(1, self.cell)
        };
        let (w, h) = (size(c.axis), size(r.axis));
        let x0 = self.cell_x + (self.cell - w) / 2;
        let y0 = self.cell_y + (self.cell - h) / 2;
        let mask_plane = &mask[&self.plane];
        let image_plane = image.map(|p| &p[&self.plane]);
        let mut ids = vec![0u32; (w * h) as usize];
        for py in 0..h {
            for px in 0..w {
                let mut v = [0usize; 3];
                v[self.plane.0] = self.plane.1;
                v[c.axis] = self.voxel(px, c.axis, c.reversed);
                v[r.axis] = self.voxel(py, r.axis, r.reversed);
                ids[(py * w + px) as usize] = label_id(mask_plane.at(v));
                let grey = match (image_plane, &self.scene.window) {
                    (Some(p), Some(win)) => win.grey(p.at(v)),
                    _ => 0,
                };
                canvas.set(i64::from(x0 + px), i64::from(y0 + py), [grey; 3]);
            }
        }
        self.overlay(canvas, &ids, (x0, y0, w, h), image_plane.is_some());
        self.letters(canvas, (x0, y0, w, h));
        let cx = self.pixel(centroid[c.axis], c.axis, c.reversed, w);
        let cy = self.pixel(centroid[r.axis], r.axis, r.reversed, h);
        Panel {
            view: self.view,
            x: x0,
            y: y0,
            width: w,
            height: h,
            plane: [self.plane.0, self.plane.1],
            centroid_px: [x0 + cx, y0 + cy],
        }
    }

    /// Labels: blended over an image (solid without one), outlined in full colour
    /// where a 4-neighbour differs.
    fn overlay(
        &self,
        canvas: &mut Canvas,
        ids: &[u32],
        (x0, y0, w, h): (u32, u32, u32, u32),
        over_image: bool,
    ) {
        let at = |x: u32, y: u32| ids[(y * w + x) as usize];
        for y in 0..h {
            for x in 0..w {
                let id = at(x, y);
                if id == 0 {
                    continue;
                }
                let colour = (self.scene.colour_of)(id);
                let edge = (x > 0 && at(x - 1, y) != id)
                    || (x + 1 < w && at(x + 1, y) != id)
                    || (y > 0 && at(x, y - 1) != id)
                    || (y + 1 < h && at(x, y + 1) != id);
                let (px, py) = (i64::from(x0 + x), i64::from(y0 + y));
                if edge || !over_image {
                    canvas.set(px, py, colour);
                } else {
                    canvas.blend(px, py, colour, FILL_ALPHA);
                }
            }
        }
    }

    fn letters(&self, canvas: &mut Canvas, (x0, y0, w, h): (u32, u32, u32, u32)) {
        const SIZE: f32 = 11.0;
        let [left, right, top, bottom] = self.view.edge_letters();
        let (x0, y0, w, h) = (x0 as f32, y0 as f32, w as f32, h as f32);
        let mid_y = y0 + h / 2.0 - SIZE / 2.0;
        canvas.text(x0 + 1.0, mid_y, SIZE, LETTERS, left);
        canvas.text(
            x0 + w - 1.0 - Canvas::text_width(SIZE, right),
            mid_y,
            SIZE,
            LETTERS,
            right,
        );
        let mid_x = |s: &str| x0 + w / 2.0 - Canvas::text_width(SIZE, s) / 2.0;
        canvas.text(mid_x(top), y0, SIZE, LETTERS, top);
        canvas.text(mid_x(bottom), y0 + h - SIZE - 1.0, SIZE, LETTERS, bottom);
    }
}

/// A mask value as a class id: positive integers only (0, NaN and fractions are none).
pub(crate) fn label_id(v: f32) -> u32 {
    if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f32 {
        v as u32
    } else {
        0
    }
}
