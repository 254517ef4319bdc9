//! Box-drawn tables, as upstream's CLI prints them:
//!
//! ```text
//! ┌────┬────────┬──────┬──────────┬────────┬────────┐
//! │ ID │ POLICY │ RULE │ RESOURCE │ RESULT │ REASON │
//! ├────┼────────┼──────┼──────────┼────────┼────────┤
//! │  1 │ p      │ r    │ v1/Pod/a │ Pass   │ Ok     │
//! └────┴────────┴──────┴──────────┴────────┴────────┘
//! ```
//!
//! Cells wider than [`MAX_CELL_WIDTH`] are wrapped at spaces. Colors are ANSI escapes added
//! around the padded text, so they never affect the layout.
use std::fmt::Write;

/// Cells are wrapped to at most this many characters per line.
pub const MAX_CELL_WIDTH: usize = 100;

/// How a cell is colored when colors are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// No color.
    Plain,
    /// Bold cyan: names of policies, rules and resources.
    Name,
    /// Bold green: a passing result.
    Good,
    /// Bold red: a failing result.
    Bad,
    /// Bold yellow: a notice such as `Excluded` or `Not found`.
    Notice,
}

impl Style {
    fn escape(self) -> Option<&'static str> {
        match self {
            Style::Plain => None,
            Style::Name => Some("\x1b[36;1m"),
            Style::Good => Some("\x1b[32;1m"),
            Style::Bad => Some("\x1b[31;1m"),
            Style::Notice => Some("\x1b[33;1m"),
        }
    }
}

const RESET: &str = "\x1b[0m";
const HEADER_STYLE: &str = "\x1b[32;40m";

/// How a column's cells are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Left-aligned (text).
    Left,
    /// Right-aligned (numbers).
    Right,
}

/// One cell: its text and style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The text, possibly spanning several lines.
    pub text: String,
    /// Its color.
    pub style: Style,
}

impl Cell {
    /// A cell with the given text and style.
    pub fn new(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: text.into(),
            style,
        }
    }
}

/// A table: headers, alignments and rows of cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    aligns: Vec<Align>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            headers: columns.iter().map(|(header, _)| *header).collect(),
            aligns: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table as text, each line ending in a newline, with or without colors.
    pub fn render(&self, colors: bool) -> String {
        let wrapped: Vec<Vec<Vec<String>>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| wrap(&cell.text, MAX_CELL_WIDTH))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = self
            .headers
            .iter()
            .enumerate()
            .map(|(column, header)| {
                wrapped
                    .iter()
                    .flat_map(|row| row.get(column).into_iter().flatten())
                    .map(|line| line.chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or_default()
            })
            .collect();
        let mut out = String::new();
        border(&mut out, &widths, ['┌', '┬', '┐']);
        out.push('│');
        for (header, width) in self.headers.iter().zip(&widths) {
            let padded = format!(" {header:<width$} ");
            match colors {
                true => out.push_str(&format!("{HEADER_STYLE}{padded}{RESET}")),
                false => out.push_str(&padded),
            }
            out.push('│');
        }
        out.push('\n');
        border(&mut out, &widths, ['├', '┼', '┤']);
        for (row, cells) in self.rows.iter().zip(&wrapped) {
            let height = cells.iter().map(Vec::len).max().unwrap_or(1);
            for line in 0..height {
                out.push('│');
                for (column, width) in widths.iter().enumerate() {
                    let text = cells
                        .get(column)
                        .and_then(|lines| lines.get(line))
                        .map_or("", String::as_str);
                    let padded = match self.aligns.get(column) {
                        Some(Align::Right) => format!("{text:>width$}"),
                        _ => format!("{text:<width$}"),
                    };
                    let style = row.get(column).map_or(Style::Plain, |cell| cell.style);
                    match (colors, style.escape()) {
                        (true, Some(escape)) if !text.is_empty() => {
                            let _ = write!(out, " {escape}{padded}{RESET} ");
                        }
                        _ => {
                            let _ = write!(out, " {padded} ");
                        }
                    }
                    out.push('│');
                }
                out.push('\n');
            }
        }
        border(&mut out, &widths, ['└', '┴', '┘']);
        out
    }
}

/// One row of a [`ResultsTable`].
#[derive(Clone, Debug)]
pub struct ResultRow<'a> {
    /// The row's number.
    pub id: usize,
    /// The policy's name.
    pub policy: &'a str,
    /// The rule's name.
    pub rule: &'a str,
    /// The resource, as `namespace/kind/name` or however the command names it.
    pub resource: &'a str,
    /// The result cell (`Pass`, `Fail`, ...), styled by the caller.
    pub result: Cell,
    /// The reason cell.
    pub reason: Cell,
    /// The rule's message, shown only in detailed tables.
    pub message: &'a str,
}

/// A table of rule results in upstream's layout (its `printTable`): `ID`, `POLICY`, `RULE`,
/// `RESOURCE`, `RESULT`, `REASON`, and `MESSAGE` when detailed.
#[derive(Clone, Debug)]
pub struct ResultsTable {
    table: Table,
    detailed: bool,
}

impl ResultsTable {
    /// An empty results table; `detailed` adds the `MESSAGE` column.
    pub fn new(detailed: bool) -> Self {
        let mut columns = vec![
            ("ID", Align::Right),
            ("POLICY", Align::Left),
            ("RULE", Align::Left),
            ("RESOURCE", Align::Left),
            ("RESULT", Align::Left),
            ("REASON", Align::Left),
        ];
        if detailed {
            columns.push(("MESSAGE", Align::Left));
        }
        Self {
            table: Table::new(&columns),
            detailed,
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: ResultRow<'_>) {
        let mut cells = vec![
            Cell::new(row.id.to_string(), Style::Plain),
            Cell::new(row.policy, Style::Name),
            Cell::new(row.rule, Style::Name),
            Cell::new(row.resource, Style::Name),
            row.result,
            row.reason,
        ];
        if self.detailed {
            cells.push(Cell::new(row.message, Style::Plain));
        }
        self.table.push(cells);
    }

    /// The table as text, as [`Table::render`].
    pub fn render(&self, colors: bool) -> String {
        self.table.render(colors)
    }
}

fn border(out: &mut String, widths: &[usize], [left, middle, right]: [char; 3]) {
    out.push(left);
    for (index, width) in widths.iter().enumerate() {
        if index > 0 {
            out.push(middle);
        }
        out.extend(std::iter::repeat_n('─', width + 2));
    }
    out.push(right);
    out.push('\n');
}

/// Splits text into lines of at most `width` characters, breaking at spaces when possible and
/// keeping the text's own line breaks.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            let mut word = word;
            loop {
                let line_length = line.chars().count();
                let word_length = word.chars().count();
                let needed = if line.is_empty() {
                    word_length
                } else {
                    line_length + 1 + word_length
                };
                if needed <= width {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(word);
                    break;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                    continue;
                }
                // A word longer than the width is split.
                let split = word
                    .char_indices()
                    .nth(width)
                    .map_or(word.len(), |(index, _)| index);
                lines.push(word[..split].to_owned());
                word = &word[split..];
                if word.is_empty() {
                    break;
                }
            }
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<(&'static str, Align)> {
        vec![
            ("ID", Align::Right),
            ("POLICY", Align::Left),
            ("REASON", Align::Left),
        ]
    }

    #[test]
    fn an_empty_table_has_headers_only() {
        let table = Table::new(&columns());
        assert_eq!(
            table.render(false),
            "┌────┬────────┬────────┐\n│ ID │ POLICY │ REASON │\n├────┼────────┼────────┤\n└────┴────────┴────────┘\n"
        );
    }

    #[test]
    fn numbers_align_right_and_text_left() {
        let mut table = Table::new(&columns());
        table.push(vec![
            Cell::new("1", Style::Plain),
            Cell::new("a-long-policy", Style::Name),
            Cell::new("Ok", Style::Plain),
        ]);
        assert_eq!(
            table.render(false),
            "┌────┬───────────────┬────────┐\n\
             │ ID │ POLICY        │ REASON │\n\
             ├────┼───────────────┼────────┤\n\
             │  1 │ a-long-policy │ Ok     │\n\
             └────┴───────────────┴────────┘\n"
        );
    }

    #[test]
    fn colors_wrap_padded_text_without_changing_the_layout() {
        let mut table = Table::new(&columns());
        table.push(vec![
            Cell::new("1", Style::Plain),
            Cell::new("p", Style::Name),
            Cell::new("Ok", Style::Good),
        ]);
        let colored = table.render(true);
        assert!(colored.contains("\x1b[36;1mp     \x1b[0m"), "{colored:?}");
        let stripped = colored
            .replace("\x1b[36;1m", "")
            .replace("\x1b[32;1m", "")
            .replace(HEADER_STYLE, "")
            .replace(RESET, "");
        assert_eq!(stripped, table.render(false));
    }

    #[test]
    fn long_cells_wrap_at_spaces() {
        let text = "word ".repeat(30);
        let lines = wrap(text.trim_end(), 20);
        assert!(lines.iter().all(|line| line.chars().count() <= 20));
        assert_eq!(lines.join(" "), text.trim_end());
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("one\ntwo", 10), ["one", "two"]);
    }

    #[test]
    fn multi_line_cells_make_taller_rows() {
        let mut table = Table::new(&columns());
        table.push(vec![
            Cell::new("1", Style::Plain),
            Cell::new("p", Style::Plain),
            Cell::new("a\nb", Style::Plain),
        ]);
        let text = table.render(false);
        assert!(
            text.contains("│  1 │ p      │ a      │\n│    │        │ b      │\n"),
            "{text}"
        );
    }
}
