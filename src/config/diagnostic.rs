//! A problem found in the config repository, located by file, line, column and field path, and the
//! three ways `validate` prints them (text for people, JSON for tools, GitHub annotations for CI).

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Path relative to the repository root, with `/` separators.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// Field path inside the document, such as `spec.users[2].email`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Which declared resource a problem belongs to, so that `apply` can hold back exactly that resource
/// and converge the rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Tenant(String),
    Plan(String),
    Application(String),
    /// The file could not be read far enough to say; everything it last declared is held back.
    File(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagnosticFormat {
    Text,
    Json,
    Github,
}

/// Renders diagnostics for `gatehouse validate`.
pub fn render(diagnostics: &[Diagnostic], files_read: usize, format: DiagnosticFormat) -> String {
    match format {
        DiagnosticFormat::Text => render_text(diagnostics, files_read),
        DiagnosticFormat::Json => {
            let body =
                serde_json::json!({ "valid": diagnostics.is_empty(), "files": files_read, "errors": diagnostics });
            format!("{body:#}\n")
        }
        DiagnosticFormat::Github => diagnostics.iter().map(github_annotation).collect(),
    }
}

fn render_text(diagnostics: &[Diagnostic], files_read: usize) -> String {
    let mut out: String = diagnostics.iter().map(|d| format!("{d}\n")).collect();
    if diagnostics.is_empty() {
        out.push_str(&format!("valid: {files_read} files, no problems\n"));
    } else {
        let noun = if diagnostics.len() == 1 { "problem" } else { "problems" };
        out.push_str(&format!("invalid: {} {noun} in {files_read} files\n", diagnostics.len()));
    }
    out
}

/// `::error file=…,line=…,col=…::message`, escaped as the GitHub Actions toolkit does.
fn github_annotation(d: &Diagnostic) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
    }
    fn property(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let message = if d.path.is_empty() { d.message.clone() } else { format!("{}: {}", d.path, d.message) };
    format!(
        "::error file={},line={},col={},title={}::{}\n",
        property(&d.file),
        d.line,
        d.column,
        property("gatehouse validate"),
        data(&message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diagnostic {
        Diagnostic {
            file: "tenants/acme.yaml".into(),
            line: 12,
            column: 7,
            path: "spec.users[1].role".into(),
            message: "unknown variant `boss`, expected one of `owner`, `admin`, `user`".into(),
        }
    }

    #[test]
    fn text_names_file_line_column_and_field() {
        let text = render(&[sample()], 3, DiagnosticFormat::Text);
        assert!(text.starts_with("tenants/acme.yaml:12:7: spec.users[1].role: unknown variant"), "{text}");
        assert!(text.ends_with("invalid: 1 problem in 3 files\n"), "{text}");
    }

    #[test]
    fn github_annotations_escape_commas_and_colons_in_properties() {
        let mut d = sample();
        d.file = "a,b:c.yaml".into();
        d.message = "line one\nline two".into();
        let out = render(&[d], 1, DiagnosticFormat::Github);
        assert_eq!(
            out,
            "::error file=a%2Cb%3Ac.yaml,line=12,col=7,title=gatehouse validate::spec.users[1].role: line one%0Aline two\n"
        );
    }

    #[test]
    fn json_says_whether_the_repo_is_valid() {
        let out: serde_json::Value = serde_json::from_str(&render(&[], 4, DiagnosticFormat::Json)).unwrap_or_default();
        assert_eq!(out["valid"], true);
        assert_eq!(out["files"], 4);
    }
}
