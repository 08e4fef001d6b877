//! Validation and defaults from the reference's own schemas.
//!
//! The convai models are hundreds of nested, versioned schemas; writing them as Rust types would
//! be a second, drifting copy. Instead the official OpenAPI document is embedded and documents
//! are checked against its `components/schemas` directly, the way pydantic checks them on the
//! hosted API: types, enums, literals, bounds, lengths, patterns, required fields and
//! discriminated unions, with errors located and named as pydantic names them. While checking,
//! every default the schema declares is filled in (walking into the chosen branch of each
//! union), and nested models that pydantic builds with a default factory are created and
//! filled, so a stored document is complete. Fields the schema does not know are kept as they
//! are: clients round-trip documents verbatim.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use regex::Regex;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::validation::{LocItem, Violation};

/// The official convai OpenAPI document (see `reference/` beside this crate).
pub const REFERENCE_JSON: &str = include_str!("../reference/convai-openapi.json");

/// The reference's component schemas, each parsed the first time a check reaches it: parsed
/// whole, the document takes about 6 MB, while a server checks a few dozen of its schemas.
pub struct Spec {
    schemas: HashMap<String, LazySchema>,
    /// Compiled `pattern`s by their text (`None`: it does not compile, so it is not checked).
    patterns: Mutex<HashMap<String, Option<Arc<Regex>>>>,
}

struct LazySchema {
    text: &'static RawValue,
    parsed: OnceLock<Value>,
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    components: Components<'a>,
}

#[derive(Deserialize)]
struct Components<'a> {
    #[serde(borrow)]
    schemas: HashMap<String, &'a RawValue>,
}

static REFERENCE: LazyLock<Spec> = LazyLock::new(|| {
    // The document is embedded at compile time; a test parses it, so this cannot fail at run
    // time.
    let document: Document<'static> =
        serde_json::from_str(REFERENCE_JSON).expect("embedded reference parses");
    let schemas = document
        .components
        .schemas
        .into_iter()
        .map(|(name, text)| {
            let parsed = OnceLock::new();
            (name, LazySchema { text, parsed })
        })
        .collect();
    Spec { schemas, patterns: Mutex::default() }
});

/// Fields the hosted API answers that its published schema leaves out: the official CLI's
/// agent templates carry `platform_settings.ban: null` (as a GET of the hosted API gives it)
/// and warn after a push that it "was not persisted" when the answer lacks it.
const UNPUBLISHED: [(&str, &str, &str); 1] = [(
    "AgentPlatformSettingsResponseModel",
    "ban",
    r#"{"anyOf": [{"type": "object"}, {"type": "null"}], "default": null}"#,
)];

/// Enums that are open here: any string is accepted. `LLM` names models, and Colloquy routes
/// any model name to a provider (DESIGN.md §4.1), so an agent may name a local model.
const OPEN_ENUMS: [&str; 1] = ["LLM"];
static ANY_STRING: LazyLock<Value> = LazyLock::new(|| serde_json::json!({"type": "string"}));

/// How deep documents may nest; deeper input is refused instead of exhausting the stack.
const MAX_DEPTH: usize = 64;

impl Spec {
    /// The embedded reference.
    pub fn reference() -> &'static Spec {
        &REFERENCE
    }

    /// A named component schema.
    pub fn schema(&self, name: &str) -> Option<&Value> {
        let lazy = self.schemas.get(name)?;
        Some(lazy.parsed.get_or_init(|| {
            // Each entry was read as valid JSON with the document; parsing it again cannot fail.
            let mut schema = serde_json::from_str(lazy.text.get()).unwrap_or(Value::Null);
            for (model, field, field_schema) in UNPUBLISHED {
                if model == name
                    && let Some(properties) =
                        schema.get_mut("properties").and_then(Value::as_object_mut)
                {
                    let field_schema = serde_json::from_str(field_schema).unwrap_or(Value::Null);
                    properties.insert(field.to_owned(), field_schema);
                }
            }
            schema
        }))
    }

    /// `pattern` compiled, once per distinct pattern.
    fn pattern(&self, pattern: &str) -> Option<Arc<Regex>> {
        let mut patterns = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(compiled) = patterns.get(pattern) {
            return compiled.clone();
        }
        let compiled = Regex::new(pattern).ok().map(Arc::new);
        patterns.insert(pattern.to_owned(), compiled.clone());
        compiled
    }

    /// The property names a named object schema declares.
    pub fn property_names(&self, name: &str) -> Vec<String> {
        self.schema(name)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks `value` against the component schema `name`, filling defaults in place and
    /// keeping unknown fields. Violations are located under `loc` (e.g. `["body"]`).
    pub fn check(
        &self, name: &str, value: &mut Value, loc: &[LocItem],
    ) -> Result<(), Vec<Violation>> {
        let schema = self.named(name, loc)?;
        self.check_with(schema, Extras::Keep, value, loc)
    }

    /// Shapes `value` into the response model `name`: checked, defaults filled, and every
    /// property the model does not declare removed, as the reference serializes its models.
    pub fn project(&self, name: &str, value: &mut Value) -> Result<(), Vec<Violation>> {
        let schema = self.named(name, &[])?;
        self.check_with(schema, Extras::Drop, value, &[])
    }

    /// Shapes `value` into the schema of property `property` of the model `name` (a model's
    /// field, when the document holds the field alone).
    pub fn project_property(
        &self, name: &str, property: &str, value: &mut Value,
    ) -> Result<(), Vec<Violation>> {
        let schema = self.named(name, &[])?.pointer(&format!("/properties/{property}"));
        let schema = schema.ok_or_else(|| {
            vec![Violation::new(
                Vec::<LocItem>::new(),
                "value_error",
                format!("{name} has no {property}"),
            )]
        })?;
        self.check_with(schema, Extras::Drop, value, &[])
    }

    /// Checks `value` against any schema of the document (a `$ref` or an inline schema),
    /// treating undeclared properties as `extras` says.
    pub fn check_with(
        &self, schema: &Value, extras: Extras, value: &mut Value, loc: &[LocItem],
    ) -> Result<(), Vec<Violation>> {
        let mut errors = Vec::new();
        let mut path = loc.to_vec();
        Walker { spec: self, extras }.walk(schema, value, &mut path, &mut errors, 0);
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn named(&self, name: &str, loc: &[LocItem]) -> Result<&Value, Vec<Violation>> {
        self.schema(name).ok_or_else(|| {
            vec![Violation::new(loc.to_vec(), "value_error", format!("unknown schema {name}"))]
        })
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut current = schema;
        for _ in 0..16 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let name = r.strip_prefix("#/components/schemas/");
                    if name.is_some_and(|n| OPEN_ENUMS.contains(&n)) {
                        return &ANY_STRING;
                    }
                    match name.and_then(|n| self.schema(n)) {
                        Some(target) => current = target,
                        None => return current,
                    }
                }
                None => match current.get("allOf").and_then(Value::as_array) {
                    Some(all) if all.len() == 1 => current = &all[0],
                    _ => return current,
                },
            }
        }
        current
    }
}

/// What a walk does with properties a model does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    /// Kept as they are: requests, whose unknown fields clients expect to round-trip.
    Keep,
    /// Removed: a document shaped into a response model, which serializes only its fields.
    Drop,
    /// Refused (`extra_forbidden`): a response checked to be exactly its model.
    Forbid,
}

/// One walk of a value against a schema.
struct Walker<'a> {
    spec: &'a Spec,
    extras: Extras,
}

impl Walker<'_> {
    fn walk(
        &self, schema: &Value, value: &mut Value, loc: &mut Vec<LocItem>,
        errors: &mut Vec<Violation>, depth: usize,
    ) {
        if depth > MAX_DEPTH {
            errors.push(Violation::new(
                loc.clone(),
                "recursion_loop",
                "Input is nested too deeply",
            ));
            return;
        }
        let schema = self.spec.resolve(schema);
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            return self.union(branches, None, value, loc, errors, depth);
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            return self.union(branches, schema.get("discriminator"), value, loc, errors, depth);
        }
        if let Some(expected) = schema.get("const") {
            if value != expected {
                errors.push(Violation::new(
                    loc.clone(),
                    "literal_error",
                    format!("Input should be {}", literal(expected)),
                ));
            }
            return;
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                errors.push(Violation::new(
                    loc.clone(),
                    "enum",
                    format!("Input should be {}", one_of(options)),
                ));
            }
            return;
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => self.object(schema, value, loc, errors, depth),
            Some("array") => self.array(schema, value, loc, errors, depth),
            Some("string") => self.string(schema, value, loc, errors),
            Some("integer") => number(schema, value, loc, errors, true),
            Some("number") => number(schema, value, loc, errors, false),
            Some("boolean") if !value.is_boolean() => {
                errors.push(Violation::new(
                    loc.clone(),
                    "bool_type",
                    "Input should be a valid boolean",
                ));
            }
            Some("null") if !value.is_null() => {
                errors.push(Violation::new(loc.clone(), "none_required", "Input should be None"));
            }
            _ => {
                if schema.get("properties").is_some() {
                    self.object(schema, value, loc, errors, depth);
                }
            }
        }
    }

    fn union(
        &self, branches: &[Value], discriminator: Option<&Value>, value: &mut Value,
        loc: &mut Vec<LocItem>, errors: &mut Vec<Violation>, depth: usize,
    ) {
        if value.is_null()
            && branches
                .iter()
                .any(|b| self.spec.resolve(b).get("type").and_then(Value::as_str) == Some("null"))
        {
            return;
        }
        if let Some(disc) = discriminator {
            return self.tagged(branches, disc, value, loc, errors, depth);
        }
        let candidates: Vec<&Value> = branches
            .iter()
            .filter(|b| self.spec.resolve(b).get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = candidates.as_slice() {
            if value.is_null() {
                errors.push(Violation::new(
                    loc.clone(),
                    null_kind(self.spec.resolve(only)),
                    "Input should not be None",
                ));
                return;
            }
            return self.walk(only, value, loc, errors, depth + 1);
        }
        // Several shapes: the first branch that accepts the value wins (pydantic's smart mode
        // prefers exact type matches, which for JSON input is the same as the first fit). The
        // branches whose JSON type matches the value are tried first, so the error reported is
        // the most relevant one.
        let mut ordered: Vec<&Value> = candidates
            .iter()
            .copied()
            .filter(|b| type_matches(self.spec.resolve(b), value))
            .collect();
        ordered.extend(
            candidates.iter().copied().filter(|b| !type_matches(self.spec.resolve(b), value)),
        );
        if self.extras == Extras::Drop {
            // A branch that takes the value whole is the one it was written for; only when
            // none does is the first that fits once its extras are dropped taken.
            let exact = Walker { spec: self.spec, extras: Extras::Forbid };
            for branch in &ordered {
                let mut attempt = value.clone();
                let mut branch_errors = Vec::new();
                exact.walk(branch, &mut attempt, loc, &mut branch_errors, depth + 1);
                if branch_errors.is_empty() {
                    *value = attempt;
                    return;
                }
            }
        }
        let mut first_errors = None;
        for branch in ordered {
            let mut attempt = value.clone();
            let mut branch_errors = Vec::new();
            self.walk(branch, &mut attempt, loc, &mut branch_errors, depth + 1);
            if branch_errors.is_empty() {
                *value = attempt;
                return;
            }
            first_errors.get_or_insert(branch_errors);
        }
        errors.extend(first_errors.unwrap_or_else(|| {
            vec![Violation::new(loc.clone(), "union_error", "Input matches no allowed shape")]
        }));
    }

    fn tagged(
        &self, branches: &[Value], disc: &Value, value: &mut Value, loc: &mut Vec<LocItem>,
        errors: &mut Vec<Violation>, depth: usize,
    ) {
        let Some(prop) = disc.get("propertyName").and_then(Value::as_str) else {
            return;
        };
        let Some(obj) = value.as_object_mut() else {
            errors.push(Violation::new(
                loc.clone(),
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            ));
            return;
        };
        let mapping = disc.get("mapping").and_then(Value::as_object);
        let tags: Vec<String> = mapping.map(|m| m.keys().cloned().collect()).unwrap_or_default();
        let tag = match obj.get(prop) {
            Some(Value::String(tag)) => tag.clone(),
            Some(_) | None => {
                // A branch whose tag has a default is what pydantic picks when the tag is left
                // out (e.g. `llm` tests); otherwise the tag is required.
                let defaulted = branches.iter().find_map(|b| {
                    self.spec
                        .resolve(b)
                        .pointer(&format!("/properties/{prop}/default"))
                        .and_then(Value::as_str)
                });
                match (obj.get(prop), defaulted) {
                    (None, Some(tag)) => {
                        obj.insert(prop.to_owned(), Value::String(tag.to_owned()));
                        tag.to_owned()
                    }
                    _ => {
                        errors.push(Violation::new(
                            loc.clone(),
                            "union_tag_not_found",
                            format!("Unable to extract tag using discriminator '{prop}'"),
                        ));
                        return;
                    }
                }
            }
        };
        let target = mapping
            .and_then(|m| m.get(&tag))
            .and_then(Value::as_str)
            .map(|r| serde_json::json!({ "$ref": r }));
        match target {
            Some(branch) => {
                loc.push(LocItem::Key(tag));
                self.walk(&branch, value, loc, errors, depth + 1);
                loc.pop();
            }
            None => {
                let expected = tags.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
                let mut at = loc.clone();
                at.push(LocItem::Key(prop.to_owned()));
                errors.push(Violation::new(
                    at,
                    "union_tag_invalid",
                    format!("Input tag '{tag}' found using '{prop}' does not match any of the expected tags: {expected}"),
                ));
            }
        }
    }

    fn object(
        &self, schema: &Value, value: &mut Value, loc: &mut Vec<LocItem>,
        errors: &mut Vec<Violation>, depth: usize,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let is_model = properties.is_some()
            || schema.get("title").is_some() && schema.get("additionalProperties").is_none();
        let Some(obj) = value.as_object_mut() else {
            let (kind, msg) = if is_model {
                (
                    "model_attributes_type",
                    "Input should be a valid dictionary or object to extract fields from",
                )
            } else {
                ("dict_type", "Input should be a valid dictionary")
            };
            errors.push(Violation::new(loc.clone(), kind, msg));
            return;
        };
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (obj.len() as u64) < min
        {
            errors.push(Violation::new(
                loc.clone(),
                "too_short",
                format!("Dictionary should have at least {min} items"),
            ));
        }
        let mut out = match properties {
            Some(properties) => self.declared(schema, properties, obj, loc, errors, depth),
            None => Map::with_capacity(obj.len()),
        };
        self.undeclared(schema, std::mem::take(obj), &mut out, loc, errors, depth);
        *obj = out;
    }

    /// The object's declared properties taken out of `obj`, checked; absent ones are required
    /// or get their default.
    fn declared(
        &self, schema: &Value, properties: &Map<String, Value>, obj: &mut Map<String, Value>,
        loc: &mut Vec<LocItem>, errors: &mut Vec<Violation>, depth: usize,
    ) -> Map<String, Value> {
        let mut out = Map::with_capacity(obj.len());
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, prop_schema) in properties {
            loc.push(LocItem::Key(name.clone()));
            match obj.remove(name) {
                Some(mut v) => {
                    self.walk(prop_schema, &mut v, loc, errors, depth + 1);
                    out.insert(name.clone(), v);
                }
                None if required.contains(&name.as_str()) => {
                    errors.push(Violation::new(loc.clone(), "missing", "Field required"));
                }
                None => {
                    if let Some(mut v) = self.default_for(prop_schema) {
                        self.walk(prop_schema, &mut v, loc, &mut Vec::new(), depth + 1);
                        out.insert(name.clone(), v);
                    }
                }
            }
            loc.pop();
        }
        out
    }

    /// The properties the schema does not declare, into `out`: refused, checked against
    /// `additionalProperties`, or kept as they are.
    fn undeclared(
        &self, schema: &Value, rest: Map<String, Value>, out: &mut Map<String, Value>,
        loc: &mut Vec<LocItem>, errors: &mut Vec<Violation>, depth: usize,
    ) {
        let extra = schema.get("additionalProperties");
        let model = schema.get("properties").is_some();
        for (name, mut v) in rest {
            loc.push(LocItem::Key(name.clone()));
            match extra {
                None | Some(Value::Bool(false)) if model && self.extras == Extras::Drop => {
                    loc.pop();
                    continue;
                }
                None if model && self.extras == Extras::Forbid => {
                    errors.push(Violation::new(
                        loc.clone(),
                        "extra_forbidden",
                        "Extra inputs are not permitted",
                    ));
                }
                Some(Value::Bool(false)) => {
                    errors.push(Violation::new(
                        loc.clone(),
                        "extra_forbidden",
                        "Extra inputs are not permitted",
                    ));
                }
                Some(extra_schema @ Value::Object(_)) => {
                    if let Some(names) = schema.get("propertyNames") {
                        let mut key = Value::String(name.clone());
                        self.walk(names, &mut key, loc, errors, depth + 1);
                    }
                    self.walk(extra_schema, &mut v, loc, errors, depth + 1);
                }
                _ => {}
            }
            loc.pop();
            out.insert(name, v);
        }
    }

    /// The value pydantic would use for an absent, optional property: the declared default;
    /// else a fresh model for a nested model (default factory), an empty map or list for a map
    /// or list, `null` for a nullable field; else nothing (the field stays absent).
    fn default_for(&self, prop_schema: &Value) -> Option<Value> {
        if let Some(d) = prop_schema.get("default") {
            return Some(d.clone());
        }
        let resolved = self.spec.resolve(prop_schema);
        if let Some(d) = resolved.get("default") {
            return Some(d.clone());
        }
        if let Some(branches) = resolved.get("anyOf").and_then(Value::as_array) {
            if branches.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("null")) {
                return Some(Value::Null);
            }
            return None;
        }
        match resolved.get("type").and_then(Value::as_str) {
            Some("object") if resolved.get("properties").is_some() => {
                Some(Value::Object(Map::new()))
            }
            Some("object") if resolved.get("additionalProperties").is_some() => {
                Some(Value::Object(Map::new()))
            }
            Some("array") => Some(Value::Array(Vec::new())),
            _ => None,
        }
    }

    fn array(
        &self, schema: &Value, value: &mut Value, loc: &mut Vec<LocItem>,
        errors: &mut Vec<Violation>, depth: usize,
    ) {
        let Some(items) = value.as_array_mut() else {
            errors.push(Violation::new(loc.clone(), "list_type", "Input should be a valid list"));
            return;
        };
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(Violation::new(
                loc.clone(),
                "too_short",
                format!(
                    "List should have at least {min} item{} after validation, not {}",
                    plural(min),
                    items.len()
                ),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            errors.push(Violation::new(
                loc.clone(),
                "too_long",
                format!(
                    "List should have at most {max} item{} after validation, not {}",
                    plural(max),
                    items.len()
                ),
            ));
        }
        if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    let mut at = loc.clone();
                    at.push(LocItem::Index(i));
                    errors.push(Violation::new(at, "value_error", "List items should be unique"));
                }
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter_mut().enumerate() {
                loc.push(LocItem::Index(i));
                self.walk(item_schema, item, loc, errors, depth + 1);
                loc.pop();
            }
        }
    }

    fn string(&self, schema: &Value, value: &Value, loc: &[LocItem], errors: &mut Vec<Violation>) {
        let Some(s) = value.as_str() else {
            errors.push(Violation::new(
                loc.to_vec(),
                "string_type",
                "Input should be a valid string",
            ));
            return;
        };
        let chars = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            errors.push(Violation::new(
                loc.to_vec(),
                "string_too_short",
                format!("String should have at least {min} character{}", plural(min)),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            errors.push(Violation::new(
                loc.to_vec(),
                "string_too_long",
                format!("String should have at most {max} character{}", plural(max)),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Some(re) = self.spec.pattern(pattern)
            && !re.is_match(s)
        {
            errors.push(Violation::new(
                loc.to_vec(),
                "string_pattern_mismatch",
                format!("String should match pattern '{pattern}'"),
            ));
        }
    }
}

/// A numeric bound: schema keyword, pydantic error type, wording, and the test it applies.
type BoundCheck = (&'static str, &'static str, &'static str, fn(f64, f64) -> bool);

fn number(
    schema: &Value, value: &Value, loc: &[LocItem], errors: &mut Vec<Violation>, integer: bool,
) {
    let Some(n) = value.as_f64().filter(|_| value.is_number()) else {
        let (kind, msg) = if integer {
            ("int_type", "Input should be a valid integer")
        } else {
            ("float_type", "Input should be a valid number")
        };
        errors.push(Violation::new(loc.to_vec(), kind, msg));
        return;
    };
    if integer && n.fract() != 0.0 {
        errors.push(Violation::new(
            loc.to_vec(),
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part",
        ));
        return;
    }
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let show = |key: &str| schema.get(key).map(Value::to_string).unwrap_or_default();
    let checks: [BoundCheck; 4] = [
        ("minimum", "greater_than_equal", "greater than or equal to", |n, b| n >= b),
        ("exclusiveMinimum", "greater_than", "greater than", |n, b| n > b),
        ("maximum", "less_than_equal", "less than or equal to", |n, b| n <= b),
        ("exclusiveMaximum", "less_than", "less than", |n, b| n < b),
    ];
    for (key, kind, words, ok) in checks {
        if let Some(b) = bound(key)
            && !ok(n, b)
        {
            errors.push(Violation::new(
                loc.to_vec(),
                kind,
                format!("Input should be {words} {}", show(key)),
            ));
        }
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("null") => value.is_null(),
        _ => schema.get("properties").is_some() && value.is_object(),
    }
}

fn null_kind(schema: &Value) -> &'static str {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => "string_type",
        Some("integer") => "int_type",
        Some("number") => "float_type",
        Some("boolean") => "bool_type",
        Some("array") => "list_type",
        Some("object") if schema.get("properties").is_none() => "dict_type",
        _ => "model_attributes_type",
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn one_of(options: &[Value]) -> String {
    let parts: Vec<String> = options.iter().map(literal).collect();
    match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(name: &str, mut v: Value) -> Result<Value, Vec<Violation>> {
        Spec::reference().check(name, &mut v, &["body".into()]).map(|()| v)
    }

    #[test]
    fn fills_nested_defaults_of_an_empty_agent() {
        let v = check(
            "Body_Create_Agent_v1_convai_agents_create_post",
            json!({"conversation_config": {}}),
        )
        .unwrap();
        let agent = &v["conversation_config"]["agent"];
        assert_eq!(agent["first_message"], "");
        assert_eq!(agent["language"], "en");
        assert!(agent["prompt"]["llm"].is_string(), "{}", agent["prompt"]);
        assert!(v["conversation_config"]["tts"].is_object());
    }

    #[test]
    fn reports_pydantic_locations_and_types() {
        let err = check(
            "Body_Create_Agent_v1_convai_agents_create_post",
            json!({"conversation_config": {"agent": {"prompt": {"temperature": "hot"}}}}),
        )
        .unwrap_err();
        assert_eq!(
            err[0].loc,
            crate::validation::path([
                "body",
                "conversation_config",
                "agent",
                "prompt",
                "temperature"
            ])
        );
        assert_eq!(err[0].kind, "float_type");

        let err = check("Body_Create_Agent_v1_convai_agents_create_post", json!({})).unwrap_err();
        assert_eq!(err[0].kind, "missing");
        assert_eq!(err[0].loc, crate::validation::path(["body", "conversation_config"]));
    }

    #[test]
    fn keeps_unknown_fields_and_values_as_sent() {
        let v = check(
            "Body_Create_Agent_v1_convai_agents_create_post",
            json!({"conversation_config": {"agent": {"prompt": {"temperature": 0.0}}, "x_custom": {"a": [1, null]}}}),
        )
        .unwrap();
        assert_eq!(v["conversation_config"]["x_custom"], json!({"a": [1, null]}));
        assert_eq!(
            serde_json::to_string(&v["conversation_config"]["agent"]["prompt"]["temperature"])
                .unwrap(),
            "0.0"
        );
    }

    #[test]
    fn projection_drops_input_only_and_unknown_fields() {
        let mut v = json!({"type": "webhook", "name": "n", "description": "d", "x_unknown": 1,
            "assignments": [{"dynamic_variable": "v", "value_path": "a", "": null}],
            "api_schema": {"url": "https://x", "method": "POST", "request_body_schema": {
                "type": "object", "property_kind": "object", "required": ["city"],
                "properties": {"city": {"type": "string", "description": "City", "property_kind": "literal"}}}}});
        Spec::reference().project("WebhookToolConfig-Output", &mut v).unwrap();
        let body = &v["api_schema"]["request_body_schema"];
        assert!(body.get("property_kind").is_none(), "{body}");
        assert!(body["properties"]["city"].get("property_kind").is_none(), "{body}");
        assert_eq!(body["properties"]["city"]["type"], "string");
        assert!(v.get("x_unknown").is_none());
        assert!(v["assignments"][0].get("").is_none(), "{}", v["assignments"]);
        assert_eq!(v["assignments"][0]["source"], "response", "defaults filled");
        let mut exact = v.clone();
        Spec::reference()
            .check_with(
                &json!({"$ref": "#/components/schemas/WebhookToolConfig-Output"}),
                Extras::Forbid,
                &mut exact,
                &[],
            )
            .unwrap();
        v["api_schema"]["x"] = json!(1);
        let err = Spec::reference()
            .check_with(
                &json!({"$ref": "#/components/schemas/WebhookToolConfig-Output"}),
                Extras::Forbid,
                &mut v,
                &[],
            )
            .unwrap_err();
        assert_eq!(err[0].kind, "extra_forbidden");
    }

    #[test]
    fn unpublished_fields_the_hosted_api_answers_are_kept() {
        let mut settings = json!({"ban": null, "x_unknown": 1});
        Spec::reference().project("AgentPlatformSettingsResponseModel", &mut settings).unwrap();
        assert_eq!(settings["ban"], Value::Null);
        assert!(settings.get("ban").is_some() && settings.get("x_unknown").is_none());
    }

    #[test]
    fn discriminated_unions_check_the_tag() {
        let err = check(
            "Body_Create_Agent_v1_convai_agents_create_post",
            json!({"conversation_config": {"agent": {"prompt": {"tools": [{"type": "teleport", "name": "x"}]}}}}),
        )
        .unwrap_err();
        assert_eq!(err[0].kind, "union_tag_invalid", "{err:?}");
    }

    #[test]
    fn every_pattern_compiles() {
        let mut count = 0;
        fn walk(v: &Value, count: &mut usize) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(p)) = m.get("pattern") {
                        assert!(Spec::reference().pattern(p).is_some(), "{p}");
                        *count += 1;
                    }
                    m.values().for_each(|v| walk(v, count));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, count)),
                _ => {}
            }
        }
        let spec = Spec::reference();
        for name in spec.schemas.keys() {
            walk(spec.schema(name).unwrap(), &mut count);
        }
        assert!(count > 0);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut v = json!(1);
        for _ in 0..200 {
            v = json!({"x": v});
        }
        let body = json!({"conversation_config": {"language_presets": {"en": v}}});
        assert!(check("Body_Create_Agent_v1_convai_agents_create_post", body).is_err());
    }
}
