//! `kyverno jp`: Kyverno's JMESPath dialect on the command line: `query` evaluates expressions,
//! `function` lists the functions, `parse` checks expressions.
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kyverno_policy_core::jmespath::{self, JmesPathError};
use serde_json::Value;

use crate::output::json::{go_json_compact, go_json_pretty};

/// Why a `jp` command failed.
#[derive(Debug, thiserror::Error)]
pub enum JpError {
    /// A file could not be read.
    #[error("failed to read file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The input is neither JSON nor YAML.
    #[error("error parsing input json: {0}")]
    Input(serde_saphyr::Error),
    /// An expression is not valid JMESPath.
    #[error("{0}")]
    Syntax(String),
    /// An expression could not be evaluated.
    #[error("error evaluating JMESPath expression: {0}")]
    Evaluation(JmesPathError),
    /// Neither a query nor an input was given.
    #[error("at least one query or input object is required")]
    NothingToDo,
    /// Printing an expression's syntax tree needs the engine's parser, which is not public yet.
    #[error("printing the syntax tree is not supported yet (the expression is valid)")]
    AstUnavailable,
    /// Output could not be written.
    #[error(transparent)]
    Output(#[from] io::Error),
}

/// The options of `kyverno jp query`.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// Expressions given as arguments.
    pub expressions: Vec<String>,
    /// Files holding expressions.
    pub query_files: Vec<PathBuf>,
    /// A JSON or YAML input file; stdin when absent.
    pub input: Option<PathBuf>,
    /// Whether to write JSON without whitespace.
    pub compact: bool,
    /// Whether to write a string result without quotes.
    pub unquoted: bool,
}

fn read_file(path: &Path) -> Result<String, JpError> {
    std::fs::read_to_string(path).map_err(|source| JpError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_stdin(input: &mut dyn Read) -> Result<String, JpError> {
    let mut text = String::new();
    input.read_to_string(&mut text)?;
    Ok(text)
}

fn parse_input(text: &str) -> Result<Value, JpError> {
    serde_saphyr::from_str(text).map_err(JpError::Input)
}

/// A syntax error as upstream shows it: the message, the expression, and a caret under the
/// offending position.
fn syntax_error(expression: &str, error: &JmesPathError) -> Option<JpError> {
    let JmesPathError::Syntax { offset, .. } = error else {
        return None;
    };
    let column = expression
        .get(..*offset)
        .map_or(*offset, |prefix| prefix.chars().count());
    Some(JpError::Syntax(format!(
        "{error}\n{expression}\n{}^",
        " ".repeat(column)
    )))
}

/// Evaluates the expressions against the input and writes `# <expression>` and the result for
/// each.
pub fn query(
    options: &QueryOptions,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), JpError> {
    let mut expressions = options.expressions.clone();
    for file in &options.query_files {
        expressions.push(read_file(file)?);
    }
    let input = options
        .input
        .as_deref()
        .map(read_file)
        .transpose()?
        .map(|text| parse_input(&text))
        .transpose()?;
    if expressions.is_empty() && input.is_none() {
        return Err(JpError::NothingToDo);
    }
    if expressions.is_empty() {
        writeln!(
            out,
            "Reading from terminal input.\nEnter a jmespath expression and hit Ctrl+D."
        )?;
        expressions.push(read_stdin(stdin)?);
    }
    let input = match input {
        Some(input) => input,
        None => {
            writeln!(
                out,
                "Reading from terminal input.\nEnter input object and hit Ctrl+D."
            )?;
            parse_input(&read_stdin(stdin)?)?
        }
    };
    for expression in &expressions {
        let result = jmespath::search(expression, &input).map_err(|error| {
            syntax_error(expression, &error).unwrap_or(JpError::Evaluation(error))
        })?;
        writeln!(out, "# {expression}")?;
        match (&result, options.unquoted, options.compact) {
            (Value::String(text), true, _) => writeln!(out, "{text}")?,
            (_, _, true) => writeln!(out, "{}", go_json_compact(&result))?,
            (_, _, false) => writeln!(out, "{}", go_json_pretty(&result))?,
        }
    }
    Ok(())
}

/// Lists the functions named (all when `names` is empty), sorted by signature, with their
/// signature and note.
pub fn functions(names: &[String], out: &mut dyn Write) -> io::Result<()> {
    let mut catalogue = jmespath::function_catalogue();
    catalogue.sort_by_cached_key(|function| function.signature());
    for function in catalogue
        .iter()
        .filter(|function| names.is_empty() || names.contains(&function.name))
    {
        writeln!(out, "Name: {}", function.name)?;
        writeln!(out, "  Signature: {}", function.signature())?;
        if !function.note.is_empty() {
            writeln!(out, "  Note:      {}", function.note)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Checks the syntax of the expressions (arguments, then files; stdin when none).
pub fn parse(
    expressions: &[String],
    files: &[PathBuf],
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), JpError> {
    let mut all = expressions.to_vec();
    for file in files {
        all.push(read_file(file)?);
    }
    if all.is_empty() {
        writeln!(
            out,
            "Reading from terminal input.\nEnter a jmespath expression and hit Ctrl+D."
        )?;
        all.push(read_stdin(stdin)?);
    }
    for expression in &all {
        if let Err(error) = jmespath::search(expression, &Value::Null)
            && let Some(syntax) = syntax_error(expression, &error)
        {
            return Err(syntax);
        }
    }
    Err(JpError::AstUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_query(options: &QueryOptions, stdin: &str) -> Result<String, JpError> {
        let mut out = Vec::new();
        query(options, &mut stdin.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn queries_print_the_expression_and_go_style_json() {
        let options = QueryOptions {
            expressions: vec!["a".to_owned(), "b".to_owned()],
            ..Default::default()
        };
        let text = run_query(&options, "a: {x: [1, 2]}\nb: hello\n").expect("evaluates");
        assert_eq!(
            text,
            "Reading from terminal input.\nEnter input object and hit Ctrl+D.\n# a\n{\n  \"x\": [\n    1,\n    2\n  ]\n}\n# b\n\"hello\"\n"
        );
    }

    #[test]
    fn compact_and_unquoted_output() {
        let options = QueryOptions {
            expressions: vec!["to_upper(b)".to_owned(), "a".to_owned()],
            unquoted: true,
            compact: true,
            ..Default::default()
        };
        let text = run_query(&options, "{\"a\": {\"x\": 1}, \"b\": \"hi\"}").expect("evaluates");
        assert!(
            text.ends_with("# to_upper(b)\nHI\n# a\n{\"x\":1}\n"),
            "{text}"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_position() {
        let options = QueryOptions {
            expressions: vec!["a.[".to_owned()],
            ..Default::default()
        };
        let error = run_query(&options, "{}").expect_err("invalid");
        let text = error.to_string();
        assert!(text.starts_with("SyntaxError: "), "{text}");
        assert!(text.contains("\na.[\n"), "{text}");
        assert!(text.ends_with('^'), "{text}");
    }

    #[test]
    fn evaluation_errors_are_reported() {
        let options = QueryOptions {
            expressions: vec!["no_such_function(a)".to_owned()],
            ..Default::default()
        };
        let error = run_query(&options, "{}").expect_err("unknown function");
        assert!(
            error
                .to_string()
                .starts_with("error evaluating JMESPath expression"),
            "{error}"
        );
    }

    #[test]
    fn a_query_or_an_input_is_required() {
        let mut out = Vec::new();
        let error =
            query(&QueryOptions::default(), &mut "".as_bytes(), &mut out).expect_err("nothing");
        assert!(matches!(error, JpError::NothingToDo));
    }

    #[test]
    fn functions_are_listed_with_signatures() {
        let mut out = Vec::new();
        functions(&["truncate".to_owned()], &mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("Name: truncate\n  Signature: truncate("),
            "{text}"
        );
        assert!(text.ends_with("\n\n"), "{text}");
        let mut all = Vec::new();
        functions(&[], &mut all).expect("writes");
        let all = String::from_utf8(all).expect("utf-8");
        assert!(
            all.matches("Name: ").count() > 51,
            "standard and custom functions"
        );
    }

    #[test]
    fn parse_reports_syntax_errors() {
        let mut out = Vec::new();
        let error =
            parse(&["foo[".to_owned()], &[], &mut "".as_bytes(), &mut out).expect_err("invalid");
        assert!(matches!(error, JpError::Syntax(_)));
        let error = parse(&["foo.bar".to_owned()], &[], &mut "".as_bytes(), &mut out)
            .expect_err("no tree yet");
        assert!(matches!(error, JpError::AstUnavailable));
    }
}
