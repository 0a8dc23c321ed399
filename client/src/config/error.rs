//! Configuration problems that point at a file and a line, with the fix in the message.
//!
//! Everything the config loader finds wrong is collected (not just the first thing), so one
//! run of `grelay check` or `grelay up` shows the user all of it:
//!
//! ```text
//! /etc/grelay/client.toml:9: "198.18.1.2" is not an endpoint: write address:port, e.g. "198.18.1.2:4747"
//! /etc/grelay/games/valorant.txt:12: "10.0.0.0/33" is not a prefix: the length must be 0–32 for IPv4
//! ```

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with a configuration file or a game list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Its 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem at `line` of `file`.
    pub fn at(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// A problem at the byte `span` of `source`, the text of `file`.
    pub fn spanned(
        file: &Path,
        source: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self::at(file, Some(line_of(source, span.start)), message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Everything wrong with a configuration; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// Wraps the problems found; `None` when there are none.
    pub fn from_problems(problems: Vec<Problem>) -> Option<Self> {
        (!problems.is_empty()).then_some(Self { problems })
    }

    /// A single problem.
    pub fn one(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
        }
    }

    /// The problems, in the order they were found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line holding byte `offset` of `source` (clamped to the text).
pub fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let text = "a\nbb\n\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 6), 4);
        assert_eq!(line_of(text, 999), 4);
    }

    #[test]
    fn display_names_file_and_line() {
        let p = Problem::at(Path::new("x/c.toml"), Some(3), "bad");
        assert_eq!(p.to_string(), "x/c.toml:3: bad");
        let q = Problem::at(Path::new("c.toml"), None, "worse");
        let all = ConfigError::from_problems(vec![p, q]).unwrap();
        assert_eq!(all.to_string(), "x/c.toml:3: bad\nc.toml: worse");
        assert!(ConfigError::from_problems(vec![]).is_none());
    }
}
