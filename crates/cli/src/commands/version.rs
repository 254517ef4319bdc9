//! `kyverno version`.
use std::io::{self, Write};

/// Writes the version, build time and commit, as upstream does.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "Version: {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        out,
        "Time: {}",
        option_env!("KYVERNO_BUILD_TIME").unwrap_or("---")
    )?;
    writeln!(
        out,
        "Git commit ID: {}",
        option_env!("KYVERNO_GIT_COMMIT").unwrap_or("---")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn prints_three_lines() {
        let mut out = Vec::new();
        super::run(&mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], format!("Version: {}", env!("CARGO_PKG_VERSION")));
        assert!(lines[1].starts_with("Time: "));
        assert!(lines[2].starts_with("Git commit ID: "));
    }
}
