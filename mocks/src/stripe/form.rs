//! Stripe's form encoding: `metadata[plan]=pro&items[0][price]=p_1&expand[]=customer`
//! decoded into JSON objects and arrays (all leaves are strings, as on the wire).

use serde_json::{Map, Value};

/// Decodes `application/x-www-form-urlencoded` bracket notation into a JSON object.
pub(crate) fn decode(input: &[u8]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(input) {
        let mut path: Vec<String> = Vec::new();
        let (head, mut rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (&key[..], ""),
        };
        path.push(head.to_owned());
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            path.push(stripped[..end].to_owned());
            rest = &stripped[end + 1..];
        }
        insert(&mut root, &path, Value::String(value.into_owned()));
    }
    arrays(root)
}

fn insert(node: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    let Value::Object(map) = node else { return };
    // `expand[]=a&expand[]=b`: empty segments append with a fresh index.
    let key = if first.is_empty() {
        map.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        map.insert(key, value);
    } else {
        insert(map.entry(key).or_insert(Value::Null), rest, value);
    }
}

/// Objects whose keys are exactly `0..n` become arrays.
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let is_array =
                !map.is_empty() && (0..map.len()).all(|i| map.contains_key(&i.to_string()));
            if is_array {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn brackets_become_objects_and_arrays() {
        let v = decode(b"amount=2000&metadata[order_id]=6735&items[0][price]=p_1&items[1][price]=p_2&expand[]=customer&expand[]=invoice&name=J%C3%B8rn+B");
        assert_eq!(
            v,
            json!({
                "amount": "2000", "metadata": {"order_id": "6735"},
                "items": [{"price": "p_1"}, {"price": "p_2"}],
                "expand": ["customer", "invoice"], "name": "Jørn B"
            })
        );
    }
}
