//! Typed flag values. A flag has one type everywhere it is declared, so applications and OpenFeature
//! clients can ask for it with a typed getter.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    Boolean,
    Integer,
    Number,
    String,
    Object,
}

impl fmt::Display for FlagType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::String => "string",
            Self::Object => "object",
        })
    }
}

impl FlagType {
    /// The type of a JSON value, or `None` for values a flag cannot hold (null, arrays, integers
    /// outside i64).
    pub fn of(value: &serde_json::Value) -> Option<Self> {
        use serde_json::Value;
        match value {
            Value::Bool(_) => Some(Self::Boolean),
            Value::Number(n) if n.is_i64() => Some(Self::Integer),
            Value::Number(n) if n.is_f64() => Some(Self::Number),
            Value::String(_) => Some(Self::String),
            Value::Object(_) => Some(Self::Object),
            Value::Number(_) | Value::Null | Value::Array(_) => None,
        }
    }

    /// Whether a value of type `other` may be declared for a flag of this type. An integer literal is
    /// accepted for a number flag (`1` for `1.0`); nothing else mixes.
    pub fn accepts(self, other: FlagType) -> bool {
        self == other || (self == Self::Number && other == Self::Integer)
    }
}

/// A flag value whose type has been checked; number flags always hold a float.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct FlagValue(serde_json::Value);

impl FlagValue {
    /// Builds a value of `flag_type` from `value`; `None` when the two do not fit.
    pub fn typed(flag_type: FlagType, value: serde_json::Value) -> Option<Self> {
        let own = FlagType::of(&value)?;
        if !flag_type.accepts(own) {
            return None;
        }
        if flag_type == FlagType::Number && own == FlagType::Integer {
            let widened = serde_json::Number::from_f64(value.as_f64()?)?;
            return Some(Self(serde_json::Value::Number(widened)));
        }
        Some(Self(value))
    }

    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }

    pub fn flag_type(&self) -> FlagType {
        // A FlagValue is only built by `typed`, which rejects the values `of` has no type for.
        FlagType::of(&self.0).unwrap_or(FlagType::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_integer_is_widened_for_a_number_flag() {
        let value = FlagValue::typed(FlagType::Number, json!(3)).map(|v| v.0);
        assert_eq!(value, Some(json!(3.0)));
    }

    #[test]
    fn a_float_is_refused_for_an_integer_flag() {
        assert_eq!(FlagValue::typed(FlagType::Integer, json!(2.5)), None);
        assert_eq!(FlagValue::typed(FlagType::Boolean, json!("true")), None);
    }

    #[test]
    fn null_and_arrays_have_no_flag_type() {
        assert_eq!(FlagType::of(&json!(null)), None);
        assert_eq!(FlagType::of(&json!([1, 2])), None);
        assert_eq!(FlagType::of(&json!({"a": [1]})), Some(FlagType::Object));
    }
}
