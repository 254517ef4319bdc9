//! `kyverno test`: runs the `kyverno-test.yaml` suites below the given folders and compares the
//! engine's results with the expected ones.
//!
//! Unlike upstream, a test that cannot be loaded or run does not stop the run: it is reported,
//! the other tests run, and the run fails.
mod compare;
mod discovery;
mod filter;
mod rows;
mod runner;
mod targets;

use std::io::{self, Write};
use std::path::PathBuf;

use discovery::{TestCase, discover, read_test_cases};
use filter::Selector;
use rows::{CheckedRow, Verdict};

use crate::output::json::{RowEntry, Summary, TestEntry, TestReport};
use crate::output::table::{Cell, ResultRow, ResultsTable, Style};
use crate::report::result_name;

/// The options of `kyverno test`.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// Folders to search for test files.
    pub dirs: Vec<PathBuf>,
    /// The name of test files.
    pub file_name: String,
    /// `policy=..., rule=..., resource=...` selecting result items.
    pub selector: String,
    /// Whether tables show the rule messages.
    pub detailed_results: bool,
    /// Whether to show only the failed rows.
    pub fail_only: bool,
    /// Whether to color the output.
    pub colors: bool,
    /// Whether to write the JSON report instead of text.
    pub json: bool,
}

/// One test as run: its rows, or why it could not run.
struct Outcome {
    path: String,
    name: String,
    result: Result<Vec<CheckedRow>, String>,
    /// The rows a test that could not run was expected to produce (at least one); they count
    /// as failed rows in the summary.
    unrun_rows: usize,
}

/// Runs the tests and writes the results to `out`; returns whether every row met its
/// expectation and every test could run.
pub fn run(options: &TestOptions, out: &mut dyn Write) -> io::Result<bool> {
    let (selector, filter_errors) = Selector::parse(&options.selector);
    let mut sink = io::sink();
    let log: &mut dyn Write = if options.json { &mut sink } else { &mut *out };
    if !filter_errors.is_empty() {
        writeln!(log, "\nFilter errors:")?;
        for error in &filter_errors {
            writeln!(log, "  Error: {error}")?;
        }
    }
    let files = match discover(&options.dirs, &options.file_name) {
        Ok(files) => files,
        Err(error) => {
            writeln!(log, "\nError loading tests: {error}")?;
            return Ok(false);
        }
    };
    if files.is_empty() {
        writeln!(log, "\nNo test yamls available")?;
    }
    let mut outcomes = Vec::new();
    for case in files.iter().flat_map(|file| read_test_cases(file)) {
        if let Some(outcome) = run_case(&case, &selector, options, log)? {
            outcomes.push(outcome);
        }
    }
    let summary = summarize(&outcomes);
    let errors = outcomes
        .iter()
        .filter(|outcome| outcome.result.is_err())
        .count();
    if options.json {
        let report = TestReport {
            tests: outcomes.iter().map(entry).collect(),
            summary,
        };
        serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::other)?;
        writeln!(out)?;
    } else {
        print_summary(out, &outcomes, summary, options)?;
    }
    Ok(summary.failed == 0 && errors == 0 && filter_errors.is_empty())
}

/// Runs one test case, printing its progress and table; `None` when the selector leaves none
/// of its results.
fn run_case(
    case: &TestCase,
    selector: &Selector,
    options: &TestOptions,
    log: &mut dyn Write,
) -> io::Result<Option<Outcome>> {
    let path = case.path.display().to_string();
    let name = case.name().to_owned();
    let mut expected_rows = 1;
    let result = match &case.test {
        Err(error) => {
            writeln!(log, "Loading test  ( {path} ) ...")?;
            Err(error.to_string())
        }
        Ok(test) => {
            let results: Vec<_> = test
                .results
                .iter()
                .filter_map(|result| selector.select(result))
                .collect();
            if results.is_empty() {
                return Ok(None);
            }
            expected_rows = results
                .iter()
                .map(|result| (result.resources.len() + result.resource_specs.len()).max(1))
                .sum();
            writeln!(log, "Loading test  ( {path} ) ...")?;
            match runner::run(case.dir(), test, &results, log) {
                Ok(rows) => Ok(rows),
                Err(runner::RunError::Output(error)) => return Err(error),
                Err(error) => Err(error.to_string()),
            }
        }
    };
    match &result {
        Err(error) => writeln!(log, "  Error: {error}")?,
        Ok(rows) => {
            writeln!(log, "  Checking results ...")?;
            if !options.fail_only {
                let numbered: Vec<_> = rows
                    .iter()
                    .enumerate()
                    .map(|(index, row)| (index + 1, row))
                    .collect();
                write!(
                    log,
                    "\n{}\n",
                    rows_table(&numbered, options.detailed_results).render(options.colors)
                )?;
            }
        }
    }
    let unrun_rows = if result.is_err() { expected_rows } else { 0 };
    Ok(Some(Outcome {
        path,
        name,
        result,
        unrun_rows,
    }))
}

fn summarize(outcomes: &[Outcome]) -> Summary {
    let rows = outcomes
        .iter()
        .filter_map(|outcome| outcome.result.as_ref().ok())
        .flatten();
    let (passed, failed) = rows.fold((0, 0), |(passed, failed), row| match row.ok {
        true => (passed + 1, failed),
        false => (passed, failed + 1),
    });
    let failed = failed
        + outcomes
            .iter()
            .map(|outcome| outcome.unrun_rows)
            .sum::<usize>();
    Summary {
        rows: passed + failed,
        passed,
        failed,
    }
}

fn print_summary(
    out: &mut dyn Write,
    outcomes: &[Outcome],
    summary: Summary,
    options: &TestOptions,
) -> io::Result<()> {
    if options.fail_only {
        writeln!(
            out,
            "\nTest Summary: {} out of {} tests failed",
            summary.failed, summary.rows
        )?;
    } else {
        writeln!(
            out,
            "\nTest Summary: {} tests passed and {} tests failed",
            summary.passed, summary.failed
        )?;
    }
    writeln!(out)?;
    if options.fail_only && summary.failed > 0 {
        let failed: Vec<_> = outcomes
            .iter()
            .filter_map(|outcome| outcome.result.as_ref().ok())
            .flatten()
            .filter(|row| !row.ok)
            .enumerate()
            .map(|(index, row)| (index + 1, row))
            .collect();
        writeln!(out, "Aggregated Failed Test Cases : ")?;
        write!(
            out,
            "{}",
            rows_table(&failed, options.detailed_results).render(options.colors)
        )?;
    }
    let errors: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| Some((&outcome.path, outcome.result.as_ref().err()?)))
        .collect();
    if !errors.is_empty() {
        writeln!(out, "Test errors:")?;
        for (path, error) in errors {
            writeln!(out, "  Path: {path}")?;
            writeln!(out, "    Error: {error}")?;
        }
    }
    Ok(())
}

/// The table of numbered rows.
fn rows_table(rows: &[(usize, &CheckedRow)], detailed: bool) -> ResultsTable {
    let mut table = ResultsTable::new(detailed);
    for (id, row) in rows {
        let result = match (row.verdict, row.ok) {
            (Verdict::InvalidPolicy, _) => Cell::new("Skip", Style::Name),
            (_, true) => Cell::new("Pass", Style::Good),
            (_, false) => Cell::new("Fail", Style::Bad),
        };
        let reason_style = match row.verdict {
            Verdict::Checked { .. } => Style::Plain,
            Verdict::Excluded | Verdict::NotFound | Verdict::InvalidPolicy => Style::Notice,
        };
        table.push(ResultRow {
            id: *id,
            policy: &row.policy,
            rule: &row.rule,
            resource: &row.resource,
            result,
            reason: Cell::new(row.reason.as_str(), reason_style),
            message: &row.message,
        });
    }
    table
}

fn entry(outcome: &Outcome) -> TestEntry {
    let (error, rows) = match &outcome.result {
        Ok(rows) => (None, rows.iter().map(row_entry).collect()),
        Err(error) => (Some(error.clone()), Vec::new()),
    };
    TestEntry {
        path: outcome.path.clone(),
        name: outcome.name.clone(),
        error,
        rows,
    }
}

fn row_entry(row: &CheckedRow) -> RowEntry {
    RowEntry {
        policy: row.policy.clone(),
        rule: row.rule.clone(),
        resource: row.resource.clone(),
        kind: row.kind.clone(),
        expected: result_name(row.expected).to_owned(),
        actual: match row.verdict {
            Verdict::Checked { actual } => Some(result_name(actual).to_owned()),
            Verdict::Excluded | Verdict::NotFound | Verdict::InvalidPolicy => None,
        },
        ok: row.ok,
        reason: row.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_api::policy_report::v1alpha2::PolicyResult;

    fn row(ok: bool, verdict: Verdict) -> CheckedRow {
        CheckedRow {
            policy: "p".to_owned(),
            rule: "r".to_owned(),
            resource: "v1/Pod/default/a".to_owned(),
            kind: "Pod".to_owned(),
            expected: PolicyResult::Pass,
            verdict,
            ok,
            reason: if ok { "Ok" } else { "Want pass, got fail" }.to_owned(),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn tables_show_results_and_optionally_messages() {
        let pass = row(
            true,
            Verdict::Checked {
                actual: PolicyResult::Pass,
            },
        );
        let fail = row(
            false,
            Verdict::Checked {
                actual: PolicyResult::Fail,
            },
        );
        let text = rows_table(&[(1, &pass), (2, &fail)], false).render(false);
        assert_eq!(
            text,
            "┌────┬────────┬──────┬──────────────────┬────────┬─────────────────────┐\n\
             │ ID │ POLICY │ RULE │ RESOURCE         │ RESULT │ REASON              │\n\
             ├────┼────────┼──────┼──────────────────┼────────┼─────────────────────┤\n\
             │  1 │ p      │ r    │ v1/Pod/default/a │ Pass   │ Ok                  │\n\
             │  2 │ p      │ r    │ v1/Pod/default/a │ Fail   │ Want pass, got fail │\n\
             └────┴────────┴──────┴──────────────────┴────────┴─────────────────────┘\n"
        );
        let detailed = rows_table(&[(1, &pass)], true).render(false);
        assert!(detailed.contains("│ MESSAGE │"), "{detailed}");
        assert!(detailed.contains("│ m       │"), "{detailed}");
    }

    #[test]
    fn summaries_count_rows_of_tests_that_could_not_run_as_failed() {
        let outcomes = vec![
            Outcome {
                path: "a".to_owned(),
                name: "a".to_owned(),
                result: Ok(vec![
                    row(true, Verdict::Excluded),
                    row(false, Verdict::NotFound),
                ]),
                unrun_rows: 0,
            },
            Outcome {
                path: "b".to_owned(),
                name: "b".to_owned(),
                result: Err("broken".to_owned()),
                unrun_rows: 3,
            },
        ];
        assert_eq!(
            summarize(&outcomes),
            Summary {
                rows: 5,
                passed: 1,
                failed: 4
            }
        );
        let mut text = Vec::new();
        print_summary(
            &mut text,
            &outcomes,
            summarize(&outcomes),
            &TestOptions::default(),
        )
        .expect("writes");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.starts_with("\nTest Summary: 1 tests passed and 4 tests failed\n\n"),
            "{text}"
        );
        assert!(
            text.contains("Test errors:\n  Path: b\n    Error: broken\n"),
            "{text}"
        );
        let mut text = Vec::new();
        let fail_only = TestOptions {
            fail_only: true,
            ..TestOptions::default()
        };
        print_summary(&mut text, &outcomes, summarize(&outcomes), &fail_only).expect("writes");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.starts_with(
                "\nTest Summary: 4 out of 5 tests failed\n\nAggregated Failed Test Cases : \n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "│  1 │ p      │ r    │ v1/Pod/default/a │ Fail   │ Want pass, got fail │"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_entries_leave_actual_empty_without_a_rule_response() {
        let excluded = row_entry(&row(true, Verdict::Excluded));
        assert_eq!(excluded.actual, None);
        let checked = row_entry(&row(
            false,
            Verdict::Checked {
                actual: PolicyResult::Fail,
            },
        ));
        assert_eq!(checked.actual.as_deref(), Some("fail"));
        assert_eq!(checked.expected, "pass");
    }
}
