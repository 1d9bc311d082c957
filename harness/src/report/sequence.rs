//! The sequence diagram of a scenario, as inline SVG drawn from its
//! [`Message`]s: one lifeline per participant (`harness` first, the others
//! in order of first appearance), one arrow per message from top to bottom in
//! time order, the time offset in the left margin.
//!
//! Every arrow is one `<path class="arrow">` inside a `<g class="msg k-KIND">`
//! whose `<title>` holds the full label, so a hover shows what truncation cut.
//! Colours and dashes are SVG attributes rather than CSS, so the drawing
//! stays right when copied out of the page. At most [`MAX_ARROWS`] are drawn;
//! the JSON report has them all.

use std::fmt::Write as _;

use super::model::{Message, MessageKind};
use super::text::{self, escape_attr, escape_text};

/// The most arrows drawn in one diagram; a browser stays responsive and a
/// person can still scroll through it.
pub(crate) const MAX_ARROWS: usize = 300;

const MARGIN: u32 = 80;
const LANE: u32 = 170;
/// Where the participants' boxes start.
const TOP: u32 = 8;
const ROW: u32 = 26;
const BOX_HEIGHT: u32 = 26;
const LOOP_WIDTH: u32 = 28;
/// Rough width of a character of the 12px monospace font.
const CHAR_WIDTH: u32 = 7;

/// How one kind of message is drawn.
struct Style {
    color: &'static str,
    dash: Option<&'static str>,
    width: f32,
    open_head: bool,
}

fn style(kind: MessageKind) -> Style {
    let (color, dash, width, open_head) = match kind {
        MessageKind::Request => ("#1f2937", None, 1.4, false),
        MessageKind::Response => ("#4b5563", Some("6 4"), 1.2, true),
        MessageKind::Event => ("#7c3aed", None, 1.4, false),
        MessageKind::Job => ("#0f766e", Some("2 3"), 1.4, false),
        MessageKind::Query => ("#a16207", None, 1.2, true),
        MessageKind::Fault => ("#dc2626", None, 2.2, false),
    };
    Style {
        color,
        dash,
        width,
        open_head,
    }
}

/// The diagram of `messages`, and the note on those not drawn. `id` makes the
/// marker ids unique in the page.
pub(crate) fn render(messages: &[Message], id: &str) -> String {
    let mut ordered: Vec<&Message> = messages.iter().collect();
    ordered.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    ordered.truncate(MAX_ARROWS);
    let lanes = participants(&ordered);
    let diagram = Diagram { id, lanes: &lanes };
    let mut svg = diagram.open(ordered.len());
    for (row, message) in ordered.iter().enumerate() {
        diagram.push_message(&mut svg, row, message);
    }
    svg.push_str("</svg>\n</div>\n");
    if let Some(more) = messages.len().checked_sub(MAX_ARROWS).filter(|&n| n > 0) {
        let _ = writeln!(
            svg,
            r#"<p class="note">{more} more messages not drawn (report.json has them all).</p>"#
        );
    }
    svg
}

/// `harness` first when it takes part, then everyone else as they appear.
fn participants<'a>(messages: &[&'a Message]) -> Vec<&'a str> {
    let mut lanes: Vec<&str> = Vec::new();
    let appearing = messages
        .iter()
        .flat_map(|m| [m.from.as_str(), m.to.as_str()]);
    if messages
        .iter()
        .any(|m| m.from == "harness" || m.to == "harness")
    {
        lanes.push("harness");
    }
    for name in appearing {
        if !lanes.contains(&name) {
            lanes.push(name);
        }
    }
    lanes
}

struct Diagram<'a> {
    id: &'a str,
    lanes: &'a [&'a str],
}

impl Diagram<'_> {
    fn x(&self, participant: &str) -> u32 {
        let lane = self.lanes.iter().position(|p| *p == participant);
        MARGIN + LANE * lane.unwrap_or(0) as u32 + LANE / 2
    }

    fn row_y(row: usize) -> u32 {
        TOP + BOX_HEIGHT + ROW * (row as u32 + 1)
    }

    /// The `<svg>` start: markers, lifelines and the participants' boxes at
    /// the top and the bottom.
    fn open(&self, rows: usize) -> String {
        let width = MARGIN + LANE * self.lanes.len() as u32 + LANE / 2;
        let bottom = Self::row_y(rows);
        let height = bottom + BOX_HEIGHT + TOP;
        let life_top = TOP + BOX_HEIGHT;
        let mut svg = format!(
            "<div class=\"seq\">\n<svg class=\"sequence\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"sequence diagram\">\n"
        );
        self.push_markers(&mut svg);
        for lane in self.lanes {
            let x = self.x(lane);
            let _ = writeln!(
                svg,
                r##"<line class="life" x1="{x}" y1="{life_top}" x2="{x}" y2="{bottom}" stroke="#9ca3af" stroke-dasharray="4 4"/>"##
            );
            push_box(&mut svg, lane, x, TOP);
            push_box(&mut svg, lane, x, bottom);
        }
        svg
    }

    fn push_markers(&self, svg: &mut String) {
        svg.push_str("<defs>\n");
        for kind in MessageKind::ALL {
            let Style {
                color, open_head, ..
            } = style(kind);
            let (d, paint) = if open_head {
                (
                    "M0,0 L10,5 L0,10",
                    format!(r#"fill="none" stroke="{color}""#),
                )
            } else {
                ("M0,0 L10,5 L0,10 z", format!(r#"fill="{color}""#))
            };
            let _ = writeln!(
                svg,
                r#"<marker id="{}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto"><path d="{d}" {paint}/></marker>"#,
                escape_attr(&self.marker_id(kind))
            );
        }
        svg.push_str("</defs>\n");
    }

    fn marker_id(&self, kind: MessageKind) -> String {
        format!("{}-{}", self.id, text::message_kind(kind))
    }

    fn push_message(&self, svg: &mut String, row: usize, message: &Message) {
        let y = Self::row_y(row);
        let kind = text::message_kind(message.kind);
        let _ = writeln!(
            svg,
            "<g class=\"msg k-{kind}\"><title>{}</title>",
            escape_text(&title(message))
        );
        let _ = writeln!(
            svg,
            r#"<text class="t" x="{}" y="{}" text-anchor="end">{}</text>"#,
            MARGIN - 8,
            y + 4,
            escape_text(&text::duration(message.at_ms))
        );
        let (from, to) = (self.x(&message.from), self.x(&message.to));
        let (d, label_x, anchor, max_chars) = if from == to {
            let d = format!("M{from},{y} h{LOOP_WIDTH} v12 h-{LOOP_WIDTH}");
            (d, from + 4, "start", (LANE / CHAR_WIDTH) as usize)
        } else {
            let room = from.abs_diff(to) / CHAR_WIDTH;
            (
                format!("M{from},{y} H{to}"),
                (from + to) / 2,
                "middle",
                room.max(16) as usize,
            )
        };
        self.push_arrow(svg, message.kind, &d);
        let _ = writeln!(
            svg,
            r#"<text class="label" x="{label_x}" y="{}" text-anchor="{anchor}" fill="{}">{}</text></g>"#,
            y - 5,
            style(message.kind).color,
            escape_text(&text::truncate(&message.label, max_chars))
        );
    }

    fn push_arrow(&self, svg: &mut String, kind: MessageKind, d: &str) {
        let _ = writeln!(
            svg,
            r#"<path class="arrow" d="{d}" fill="none"{} marker-end="url(#{})"/>"#,
            stroke(kind),
            escape_attr(&self.marker_id(kind))
        );
    }
}

fn push_box(svg: &mut String, name: &str, x: u32, y: u32) {
    let left = x - LANE / 2 + 8;
    let _ = writeln!(
        svg,
        r##"<rect class="actor" x="{left}" y="{y}" width="{}" height="{BOX_HEIGHT}" rx="4" fill="#f3f4f6" stroke="#6b7280"/>"##,
        LANE - 16
    );
    let _ = writeln!(
        svg,
        r#"<text class="actor" x="{x}" y="{}" text-anchor="middle"><title>{}</title>{}</text>"#,
        y + 17,
        escape_text(name),
        escape_text(&text::truncate(name, ((LANE - 24) / CHAR_WIDTH) as usize))
    );
}

/// The stroke attributes of a kind's line, as in the diagram and the legend.
fn stroke(kind: MessageKind) -> String {
    let Style {
        color, dash, width, ..
    } = style(kind);
    let dash = dash
        .map(|d| format!(r#" stroke-dasharray="{d}""#))
        .unwrap_or_default();
    format!(r#" stroke="{color}" stroke-width="{width}"{dash}"#)
}

/// The hover text of a message: everything about it on one line.
fn title(message: &Message) -> String {
    let mut title = format!(
        "{} {} → {} ({}): {}",
        text::duration(message.at_ms),
        message.from,
        message.to,
        text::message_kind(message.kind),
        message.label
    );
    if let Some(id) = &message.correlation_id {
        let _ = write!(title, " [correlation id {id}]");
    }
    title
}

/// The key to the arrow styles, as HTML: each kind's line drawn as in the
/// diagram, then its name.
pub(crate) fn legend() -> String {
    let mut html = String::from(r#"<p class="legend">"#);
    for kind in MessageKind::ALL {
        let _ = write!(
            html,
            r#"<span><svg width="28" height="8" aria-hidden="true"><line x1="0" y1="4" x2="28" y2="4"{}/></svg> {}</span> "#,
            stroke(kind),
            text::message_kind(kind)
        );
    }
    html.push_str("</p>\n");
    html
}
