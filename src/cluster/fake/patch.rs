//! The patch formats the fake accepts: JSON merge patch (also used for server-side apply and
//! strategic merge, which the fake approximates) and JSON patch (RFC 6902).

use serde_json::Value;

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902 with the operations kube clients send: add, replace, remove, test.
pub(crate) fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations
        .as_array()
        .ok_or("a json patch must be an array of operations")?;
    for operation in operations {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .ok_or("a json patch operation needs `op`")?;
        let path = operation
            .get("path")
            .and_then(Value::as_str)
            .ok_or("a json patch operation needs `path`")?;
        let value = operation.get("value").cloned().unwrap_or(Value::Null);
        match op {
            "add" | "replace" => set(target, path, value, op == "replace")?,
            "remove" => {
                let (parent, last) = parent_of(target, path)?;
                let removed = match parent {
                    Value::Object(map) => map.remove(&last).is_some(),
                    Value::Array(items) => match last.parse::<usize>() {
                        Ok(index) if index < items.len() => {
                            items.remove(index);
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !removed {
                    return Err(format!("path `{path}` does not exist"));
                }
            }
            "test" => {
                if target.pointer(path) != Some(&value) {
                    return Err(format!("test failed at `{path}`"));
                }
            }
            other => return Err(format!("unsupported json patch operation `{other}`")),
        }
    }
    Ok(())
}

fn set(target: &mut Value, path: &str, value: Value, must_exist: bool) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = parent_of(target, path)?;
    match parent {
        Value::Object(map) => {
            if must_exist && !map.contains_key(&last) {
                return Err(format!("path `{path}` does not exist"));
            }
            map.insert(last, value);
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let index = last
                    .parse::<usize>()
                    .map_err(|_| format!("bad array index in `{path}`"))?;
                match (must_exist, index < items.len(), index == items.len()) {
                    (true, true, _) => items[index] = value,
                    (false, true, _) | (false, false, true) => items.insert(index, value),
                    _ => return Err(format!("array index out of range in `{path}`")),
                }
            }
        }
        _ => return Err(format!("parent of `{path}` is not an object or array")),
    }
    Ok(())
}

fn parent_of<'v>(target: &'v mut Value, path: &str) -> Result<(&'v mut Value, String), String> {
    let (parent_path, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("bad json pointer `{path}`"))?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = target
        .pointer_mut(parent_path)
        .ok_or_else(|| format!("path `{parent_path}` does not exist"))?;
    Ok((parent, last))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_replaces_removes_and_recurses() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        merge(&mut target, &json!({"a": null, "b": {"c": 5}, "e": [3]}));
        assert_eq!(target, json!({"b": {"c": 5, "d": 3}, "e": [3]}));
    }

    #[test]
    fn json_patch_replace_add_remove() {
        let mut target = json!({"spec": {"template": {"x": 1}}, "list": [1]});
        json_patch(
            &mut target,
            &json!([
                {"op": "replace", "path": "/spec/template", "value": {"y": 2}},
                {"op": "add", "path": "/list/-", "value": 2},
                {"op": "add", "path": "/metadata", "value": {}},
                {"op": "add", "path": "/metadata/a~1b", "value": "v"},
            ]),
        )
        .expect("should succeed");
        assert_eq!(
            target,
            json!({"spec": {"template": {"y": 2}}, "list": [1, 2], "metadata": {"a/b": "v"}})
        );
        json_patch(&mut target, &json!([{"op": "remove", "path": "/list/0"}]))
            .expect("should succeed");
        assert_eq!(target["list"], json!([2]));
        let err = json_patch(
            &mut target,
            &json!([{"op": "replace", "path": "/nope", "value": 1}]),
        );
        assert!(err.is_err());
    }
}
