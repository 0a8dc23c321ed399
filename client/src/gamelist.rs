//! Game prefix lists: which destinations enter the tunnel in split-tunnel mode.
//!
//! A game list is a text file with one prefix per line, the way game publishers document
//! their server ranges:
//!
//! ```text
//! # Example game — EU servers
//! 203.0.113.0/24      # matchmaking
//! 198.18.42.7         # a bare address is its host prefix (/32 or /128)
//! 2001:db8:42::/48
//! ```
//!
//! `#` starts a comment (whole line or after the prefix), blank lines are ignored, and each
//! error names the file, the line and the fix. A prefix with bits set after its length
//! (`10.1.2.3/8`) is refused rather than silently widened or narrowed: it is almost always a
//! typo, and the message shows the prefix that was probably meant.

use std::path::Path;

use grelay_proto::router::{IpPrefix, PrefixError};

use crate::config::error::Problem;

/// Largest game list read, in bytes: far above any real list, small enough to stop a wrong
/// path (a disk image, `/dev/zero`) from eating memory.
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// One prefix of a game list and where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The prefix.
    pub prefix: IpPrefix,
    /// Its 1-based line in the file.
    pub line: usize,
}

/// Parses one prefix as written by a user, with a message saying how to fix it.
///
/// Accepts `a.b.c.d/len`, `v6::/len` and bare addresses; refuses host bits set after the
/// length.
pub fn parse_prefix(text: &str) -> Result<IpPrefix, String> {
    let prefix: IpPrefix = text.parse().map_err(|e| explain(text, e))?;
    let written_addr = text.split_once('/').map_or(text, |(addr, _)| addr);
    if written_addr.parse().ok() != Some(prefix.addr()) {
        return Err(format!(
            "\"{text}\" has bits set after the first {len}: write \"{prefix}\" for the whole \
             network, or \"{written_addr}\" alone for the one address",
            len = prefix.prefix_len(),
        ));
    }
    Ok(prefix)
}

/// The message for a prefix the core's parser refused.
fn explain(text: &str, error: PrefixError) -> String {
    let why = match error {
        PrefixError::TooLong { max: 32, .. } => "the length must be 0–32 for IPv4".to_owned(),
        PrefixError::TooLong { max, .. } => format!("the length must be 0–{max} for IPv6"),
        PrefixError::InvalidAddress => {
            let addr = text.split_once('/').map_or(text, |(addr, _)| addr);
            format!("\"{addr}\" is not an IPv4 or IPv6 address")
        }
        PrefixError::InvalidLength => {
            "write the length after '/' as a decimal number, e.g. 203.0.113.0/24".to_owned()
        }
        _ => error.to_string(),
    };
    format!("\"{text}\" is not a prefix: {why}")
}

/// Parses the text of a game list; `file` is only used in the problems reported. Returns
/// every prefix with its line, or every problem found.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Entry>, Vec<Problem>> {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let mut words = content.split_whitespace();
        let (Some(word), None) = (words.next(), words.next()) else {
            problems.push(Problem::at(
                file,
                Some(line),
                format!("\"{content}\": write one prefix per line"),
            ));
            continue;
        };
        match parse_prefix(word) {
            Ok(prefix) => entries.push(Entry { prefix, line }),
            Err(message) => problems.push(Problem::at(file, Some(line), message)),
        }
    }
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

/// Reads and parses the game list at `path`.
pub fn load(path: &Path) -> Result<Vec<Entry>, Vec<Problem>> {
    let text = read_limited(path, MAX_FILE_LEN)
        .map_err(|message| vec![Problem::at(path, None, message)])?;
    parse(&text, path)
}

/// Reads a UTF-8 text file of at most `limit` bytes, with a message for each way it fails.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "larger than {limit} bytes: is this the right file?"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (byte {}): is this the right file?",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("games/valorant.txt")
    }

    #[test]
    fn comments_blanks_and_both_families() {
        let text = "# header\n\n203.0.113.0/24  # matchmaking\n   \n198.18.42.7\n\
                    2001:db8:42::/48\t# eu\n\t# indented comment\n";
        let entries = parse(text, file()).unwrap();
        let got: Vec<(String, usize)> = entries
            .iter()
            .map(|e| (e.prefix.to_string(), e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("203.0.113.0/24".to_owned(), 3),
                ("198.18.42.7/32".to_owned(), 5),
                ("2001:db8:42::/48".to_owned(), 6),
            ]
        );
        assert_eq!(parse("", file()), Ok(vec![]));
        assert_eq!(parse("# only\r\n\r\n", file()), Ok(vec![]));
    }

    #[test]
    fn bad_lines_name_file_line_and_fix() {
        let text = "203.0.113.0/24\n10.0.0.0/33\nfd00::/129\n10.0.0/8\n\
                    10.0.0.0/x\n10.1.2.3/8\n1.2.3.0/24 5.6.7.0/24\n10.0.0.0/+8\n";
        let problems = parse(text, file()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "games/valorant.txt:2: \"10.0.0.0/33\" is not a prefix: the length must be 0–32 for IPv4",
                "games/valorant.txt:3: \"fd00::/129\" is not a prefix: the length must be 0–128 for IPv6",
                "games/valorant.txt:4: \"10.0.0/8\" is not a prefix: \"10.0.0\" is not an IPv4 or IPv6 address",
                "games/valorant.txt:5: \"10.0.0.0/x\" is not a prefix: write the length after '/' as a decimal number, e.g. 203.0.113.0/24",
                "games/valorant.txt:6: \"10.1.2.3/8\" has bits set after the first 8: write \"10.0.0.0/8\" for the whole network, or \"10.1.2.3\" alone for the one address",
                "games/valorant.txt:7: \"1.2.3.0/24 5.6.7.0/24\": write one prefix per line",
                "games/valorant.txt:8: \"10.0.0.0/+8\" is not a prefix: write the length after '/' as a decimal number, e.g. 203.0.113.0/24",
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "/",
            "//",
            "/8",
            "::/",
            "\u{0}",
            "1.2.3.4/99999999999999",
            "é/é",
            "#",
        ] {
            let _ = parse(text, file());
        }
    }

    #[test]
    fn load_reports_missing_and_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt");
        let err = load(&missing).unwrap_err();
        assert!(
            err[0].to_string().contains("nope.txt: cannot open"),
            "{err:?}"
        );
        let binary = dir.path().join("bin.txt");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let err = load(&binary).unwrap_err();
        assert!(err[0].message.contains("not UTF-8"), "{err:?}");
        let good = dir.path().join("ok.txt");
        std::fs::write(&good, "203.0.113.0/24\n").unwrap();
        assert_eq!(load(&good).unwrap().len(), 1);
    }
}
