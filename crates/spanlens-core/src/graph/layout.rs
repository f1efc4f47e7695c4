//! Where each node of a graph is drawn: columns left to right by call depth, boxes in a column
//! stacked with a gap, each box as wide as its label is estimated to be. Boxes never overlap,
//! so neither do the labels drawn inside them (the UI cuts a label that still does not fit).

use super::Graph;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Estimated width of one character of a label, px: wide enough for a bold 12 px sans-serif
/// (DejaVu Sans, the widest common default, averages under 8).
pub const CHAR_WIDTH: f64 = 8.0;
/// Characters' room for the kind icon and its space before the label.
pub const ICON_CHARS: usize = 2;
/// Characters of a label the box is sized for; a longer label is cut when drawn.
pub const MAX_LABEL_CHARS: usize = 40;
/// Horizontal padding inside a box, each side, px.
pub const PAD_X: f64 = 10.0;
/// Narrowest box, px: room for the figures line under the label (calls, time, cost, errors in
/// 11 px text: about 33 characters).
pub const MIN_WIDTH: f64 = 210.0;
/// Height of a box (a label line and a figures line), px.
pub const NODE_HEIGHT: f64 = 40.0;
/// Vertical gap between boxes of one column, px.
pub const ROW_GAP: f64 = 20.0;
/// Horizontal gap between columns, where the edges run, px.
pub const COLUMN_GAP: f64 = 90.0;
/// Space around the drawing, px.
pub const MARGIN: f64 = 16.0;

/// A node's box, px from the drawing's top left.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

impl NodeBox {
    /// True when the two boxes share any area.
    pub fn overlaps(&self, o: &NodeBox) -> bool {
        self.x < o.x + o.width
            && o.x < self.x + self.width
            && self.y < o.y + o.height
            && o.y < self.y + self.height
    }
}

/// The drawing's size and one box per node, in the graph's node order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Layout {
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
    /// `boxes[i]` is `graph.nodes[i]`'s.
    pub boxes: Vec<NodeBox>,
}

/// The width a label's box gets.
pub fn box_width(label: &str) -> f64 {
    let chars = (label.chars().count().min(MAX_LABEL_CHARS) + ICON_CHARS) as f64;
    (chars * CHAR_WIDTH + 2.0 * PAD_X).max(MIN_WIDTH)
}

/// Lays a graph out in columns by depth. Within a column, nodes are ordered by the mean row of
/// their callers in earlier columns (two sweeps), which untangles most crossings of a call
/// tree; columns are centred on the tallest.
pub fn layout(graph: &Graph) -> Layout {
    let n = graph.nodes.len();
    if n == 0 {
        return Layout {
            width: 2.0 * MARGIN,
            height: 2.0 * MARGIN,
            boxes: Vec::new(),
        };
    }
    // Depths as consecutive columns.
    let mut depths: Vec<u32> = graph.nodes.iter().map(|x| x.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let col_of: Vec<usize> = graph
        .nodes
        .iter()
        .map(|x| depths.binary_search(&x.depth).unwrap_or(0))
        .collect();
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); depths.len()];
    for (i, &c) in col_of.iter().enumerate() {
        columns[c].push(i);
    }
    let at: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, x)| (x.id.as_str(), i))
        .collect();
    let mut callers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &graph.edges {
        if let (Some(&f), Some(&t)) = (at.get(e.from.as_str()), at.get(e.to.as_str())) {
            if col_of[f] < col_of[t] {
                callers[t].push(f);
            }
        }
    }
    let mut row = vec![0.0f64; n];
    let set_rows = |columns: &Vec<Vec<usize>>, row: &mut Vec<f64>| {
        for col in columns {
            for (r, &i) in col.iter().enumerate() {
                row[i] = r as f64;
            }
        }
    };
    set_rows(&columns, &mut row);
    for _ in 0..2 {
        for col in columns.iter_mut().skip(1) {
            let mut keyed: Vec<(f64, usize)> = col
                .iter()
                .map(|&i| {
                    let key = if callers[i].is_empty() {
                        row[i]
                    } else {
                        callers[i].iter().map(|&f| row[f]).sum::<f64>() / callers[i].len() as f64
                    };
                    (key, i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            *col = keyed.into_iter().map(|(_, i)| i).collect();
            for (r, &i) in col.iter().enumerate() {
                row[i] = r as f64;
            }
        }
    }
    let column_height =
        |len: usize| len as f64 * NODE_HEIGHT + len.saturating_sub(1) as f64 * ROW_GAP;
    let tallest = columns
        .iter()
        .map(|c| column_height(c.len()))
        .fold(0.0, f64::max);
    let mut boxes = vec![NodeBox::default(); n];
    let mut x = MARGIN;
    for col in &columns {
        let width = col
            .iter()
            .map(|&i| box_width(&graph.nodes[i].label))
            .fold(0.0, f64::max);
        let mut y = MARGIN + (tallest - column_height(col.len())) / 2.0;
        for &i in col {
            boxes[i] = NodeBox {
                x,
                y,
                width: box_width(&graph.nodes[i].label),
                height: NODE_HEIGHT,
            };
            y += NODE_HEIGHT + ROW_GAP;
        }
        x += width + COLUMN_GAP;
    }
    Layout {
        width: x - COLUMN_GAP + MARGIN,
        height: tallest + 2.0 * MARGIN,
        boxes,
    }
}
