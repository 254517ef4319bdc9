//! `kyverno`: the command-line entry point.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kyverno_cli::commands::{apply, jp, test, version};

/// Kubernetes Native Policy Management.
#[derive(Debug, Parser)]
#[command(name = "kyverno", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run tests from a local filesystem.
    Test(TestArgs),
    /// Applies policies on resources.
    Apply(ApplyArgs),
    /// Provides a command-line interface to JMESPath, enhanced with Kyverno specific custom functions.
    Jp {
        #[command(subcommand)]
        command: JpCommand,
    },
    /// Prints the version of Kyverno CLI.
    Version,
}

/// The formats of `kyverno test --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// `{"tests": [...], "summary": {...}}` on stdout, nothing else.
    Json,
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Folders holding test files.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Test filename.
    #[arg(short = 'f', long, default_value = "kyverno-test.yaml")]
    file_name: String,
    /// Filter test cases to run.
    #[arg(short = 't', long, default_value = "policy=*,rule=*,resource=*")]
    test_case_selector: String,
    /// If set to true, display detailed results.
    #[arg(long)]
    detailed_results: bool,
    /// If set to true, display all the failing test only as output for the test command.
    #[arg(long)]
    fail_only: bool,
    /// Remove any color from output.
    #[arg(long)]
    remove_color: bool,
    /// Machine-readable output.
    #[arg(long, value_enum)]
    output: Option<OutputFormat>,
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// Policy files or folders.
    #[arg(required = true)]
    policies: Vec<PathBuf>,
    /// Path to resource files.
    #[arg(short = 'r', long = "resource", value_delimiter = ',')]
    resources: Vec<PathBuf>,
    /// File containing values for policy variables.
    #[arg(short = 'f', long)]
    values_file: Option<PathBuf>,
    /// Variables that are required.
    #[arg(short = 's', long = "set", value_delimiter = ',')]
    set: Vec<String>,
    /// Admission Info including Roles, Cluster Roles and Subjects.
    #[arg(short = 'u', long = "userinfo")]
    user_info: Option<PathBuf>,
    /// Generates policy report when passed (default policyviolation).
    #[arg(short = 'p', long)]
    policy_report: bool,
    /// If set to true, will flag audit policies as warnings instead of failures.
    #[arg(long)]
    audit_warn: bool,
    /// Set the exit code for warnings; if failures or errors are found, will exit 1.
    #[arg(long, default_value_t = 0)]
    warn_exit_code: u8,
    /// Specify if warning exit code should be raised if no objects satisfied a policy.
    #[arg(long)]
    warn_no_pass: bool,
    /// Remove any color from output.
    #[arg(long)]
    remove_color: bool,
    /// If set to true, display detailed results.
    #[arg(long)]
    detailed_results: bool,
    /// Show results in table format.
    #[arg(short = 't', long)]
    table: bool,
    /// Prints the mutated resources in provided file/directory.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum JpCommand {
    /// Provides a command-line interface to JMESPath, enhanced with Kyverno specific custom functions.
    Query {
        /// Expressions.
        expressions: Vec<String>,
        /// Read JMESPath expression from the specified file.
        #[arg(short = 'q', long = "query", value_delimiter = ',')]
        query_files: Vec<PathBuf>,
        /// Read input from a JSON or YAML file instead of stdin.
        #[arg(short = 'i', long)]
        input: Option<PathBuf>,
        /// Produce compact JSON output that omits non essential whitespace.
        #[arg(short = 'c', long)]
        compact: bool,
        /// If the final result is a string, it will be printed without quotes.
        #[arg(short = 'u', long)]
        unquoted: bool,
    },
    /// Provides function informations.
    Function {
        /// Function names.
        names: Vec<String>,
    },
    /// Parses jmespath expression and prints corresponding AST.
    Parse {
        /// Expressions.
        expressions: Vec<String>,
        /// Read input from a JSON or YAML file instead of stdin.
        #[arg(short = 'f', long = "file", value_delimiter = ',')]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let colors_available = stdout.is_terminal();
    let mut out = stdout.lock();
    match command {
        Command::Test(args) => {
            let options = test::TestOptions {
                dirs: args.dirs,
                file_name: args.file_name,
                selector: args.test_case_selector,
                detailed_results: args.detailed_results,
                fail_only: args.fail_only,
                colors: colors_available && !args.remove_color && args.output.is_none(),
                json: args.output == Some(OutputFormat::Json),
            };
            let passed =
                test::run(&options, &mut out).context("failed to write the test results")?;
            out.flush()?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Apply(args) => {
            let options = apply::ApplyOptions {
                policies: args.policies,
                resources: args.resources,
                values_file: args.values_file,
                set: args.set,
                user_info: args.user_info,
                policy_report: args.policy_report,
                audit_warn: args.audit_warn,
                table: args.table,
                detailed_results: args.detailed_results,
                colors: colors_available && !args.remove_color,
                output: args.output,
            };
            let counts = apply::run(&options, &mut out)?;
            out.flush()?;
            if counts.failed() {
                anyhow::bail!("exit as fail or error count > 0");
            }
            let warned = counts.warn > 0 || (args.warn_no_pass && counts.pass == 0);
            Ok(if warned && args.warn_exit_code != 0 {
                ExitCode::from(args.warn_exit_code)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Jp { command } => {
            let mut stdin = std::io::stdin().lock();
            match command {
                JpCommand::Query {
                    expressions,
                    query_files,
                    input,
                    compact,
                    unquoted,
                } => {
                    let options = jp::QueryOptions {
                        expressions,
                        query_files,
                        input,
                        compact,
                        unquoted,
                    };
                    jp::query(&options, &mut stdin, &mut out)?;
                }
                JpCommand::Function { names } => jp::functions(&names, &mut out)?,
                JpCommand::Parse { expressions, files } => {
                    jp::parse(&expressions, &files, &mut stdin, &mut out)?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            version::run(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
