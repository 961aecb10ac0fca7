//! Loading a config repository never panics, whatever the YAML: every input ends in diagnostics
//! (or a valid state), and every diagnostic points into a file that was read.
//!
//! An input is one or more files: a line `##file NAME` starts a new file (the seed corpus is the
//! example repository and the invalid fixtures in this form; see `scripts/fuzz`).

#![no_main]

use gatehouse::config::load::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut files: Vec<SourceFile> = Vec::new();
    for line in text.split_inclusive('\n') {
        match line.strip_prefix("##file ") {
            // Paths are unique in a real repository; a repeated name gets a suffix until it is unique.
            Some(name) => {
                let mut path = name.trim().to_owned();
                while files.iter().any(|f| f.path == path) {
                    path.push('~');
                }
                files.push(SourceFile { path, text: String::new() });
            }
            None => match files.last_mut() {
                Some(file) => file.text.push_str(line),
                None => files.push(SourceFile { path: "input.yaml".into(), text: line.to_owned() }),
            },
        }
    }
    let lines: Vec<(String, usize)> = files.iter().map(|f| (f.path.clone(), yaml_lines(&f.text))).collect();
    let validated = gatehouse::config::validate_files(files);
    for diagnostic in validated.diagnostics() {
        assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "positions are 1-based: {diagnostic}");
        assert!(!diagnostic.message.is_empty(), "a diagnostic says what is wrong: {diagnostic}");
        if let Some((_, count)) = lines.iter().find(|(path, _)| *path == diagnostic.file) {
            assert!(diagnostic.line <= count + 1, "line within the file ({count} lines): {diagnostic}");
        }
    }
});

/// Lines as YAML (and editors) count them: a line break is LF, CR LF or a lone CR.
fn yaml_lines(text: &str) -> usize {
    let breaks = text.replace("\r\n", "\n").chars().filter(|c| matches!(c, '\n' | '\r')).count();
    breaks + 1
}
