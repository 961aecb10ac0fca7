//! Mappings whose keys are written once (issue 22.6). Serde's derived structs refuse a field written
//! twice, but a map or a free-form JSON value keeps the last of two equal keys silently: a flag
//! declared twice, or an object flag with `theme` twice, would lose one without a word. These
//! refuse it while the document is read, with the same words as the YAML parser's own check
//! (`duplicate entry with key "…"`), which the loader then locates by file, line and column.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::document::RawFlagValue;

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format!("duplicate entry with key \"{key}\""))
}

/// A `flags:` mapping: each flag once.
pub fn flags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, RawFlagValue>, D::Error> {
    struct Flags;
    impl<'de> Visitor<'de> for Flags {
        type Value = BTreeMap<String, RawFlagValue>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of flag names to values")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut flags = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if flags.contains_key(&key) {
                    return Err(duplicate(&key));
                }
                let value = map.next_value::<RawFlagValue>()?;
                flags.insert(key, value);
            }
            Ok(flags)
        }
    }
    deserializer.deserialize_map(Flags)
}

/// Any JSON value, refusing an object with a key written twice at any depth.
pub struct JsonVisitor;

/// One element of a list or value of an object, read by `JsonVisitor` too.
struct Unique(Value);

impl<'de> de::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(Unique)
    }
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean, number, string, list or mapping")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(duplicate(&key));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Spec {
        #[serde(deserialize_with = "flags")]
        flags: BTreeMap<String, RawFlagValue>,
    }

    fn read(yaml: &str) -> Result<Spec, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    // Issue 22.6: a key written twice in any mapping, at any depth, is refused.
    #[test]
    fn a_flag_or_an_object_key_written_twice_is_refused_at_any_depth() {
        let error = read("flags: { seats: 10, seats: 11 }").expect_err("flag twice");
        assert!(error.contains("duplicate entry with key \"seats\""), "{error}");
        let error = read("flags:\n  theme: { dark: true, dark: false }\n").expect_err("object key twice");
        assert!(error.contains("duplicate entry with key \"dark\""), "{error}");
        let error = read("flags:\n  ui: { panels: [ { id: 1, id: 2 } ] }\n").expect_err("deep in a list");
        assert!(error.contains("duplicate entry with key \"id\""), "{error}");
    }

    #[test]
    fn a_document_key_written_twice_is_refused() {
        let text = "apiVersion: gatehouse.dev/v1\nkind: Plan\nmetadata: { name: pro }\nspec: { flags: { a: 1 } }\nspec: { flags: {} }\n";
        let error = serde_yaml::from_str::<crate::config::document::Document>(text).expect_err("spec twice");
        assert!(error.to_string().contains("duplicate entry with key \"spec\""), "{error}");
    }

    #[test]
    fn values_of_every_type_are_read_as_json() {
        let spec = read("flags: { on: true, seats: 10, ratio: 0.5, tier: gold, ui: { a: [1, x], b: { c: 2 } } }")
            .expect("valid");
        let json: BTreeMap<&str, &Value> = spec.flags.iter().map(|(k, v)| (k.as_str(), &v.0)).collect();
        assert_eq!(
            serde_json::to_value(json).expect("json"),
            serde_json::json!({ "on": true, "seats": 10, "ratio": 0.5, "tier": "gold",
                                "ui": { "a": [1, "x"], "b": { "c": 2 } } })
        );
    }
}
