//! `Secret`: a string that never shows in `Debug` output or logs (tokens, keys, passwords given
//! on the command line or in the environment).

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_output_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "<redacted>");
    }
}
