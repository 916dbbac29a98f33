//! The OpenAPI 3.1 document, generated from the same registrations that build the router (so an
//! endpoint cannot exist undocumented), and a self-contained docs page that renders it.

use axum::response::Html;
use serde_json::{json, Map, Value};
use store::accounts::Role;

use crate::resource::{Field, Io, Spec, Ty};
use crate::Op;

fn roles_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

/// JSON Schema of one field.
pub fn ty_schema(ty: Ty, nullable: bool) -> Value {
    let mut s = match ty {
        Ty::Int { min, max } => json!({"type": "integer", "format": "int64", "minimum": min, "maximum": max}),
        Ty::Real { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
        Ty::Text { min, max } => json!({"type": "string", "minLength": min, "maxLength": max}),
        Ty::Ident { max } => json!({"type": "string", "pattern": "^[a-z0-9_.-]+$", "minLength": 1, "maxLength": max}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Enum(v) => json!({"type": "string", "enum": v}),
        Ty::Date => json!({"type": "string", "format": "date"}),
        Ty::TimeOfDay => json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}),
        Ty::Color => json!({"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}),
        Ty::Tel => {
            json!({"type": "string", "pattern": "^0[0-9 ()-]*$", "minLength": 1, "maxLength": 60, "description": "Digits, leading 0; hyphens and spaces are removed; at most 30 digits."})
        }
        Ty::LeadTel => {
            json!({"type": "string", "pattern": "^0[0-9]{8,29}$", "description": "Half-width digits only, 9 to 30, leading 0 (BIZTEL §2.2); nothing is removed."})
        }
        Ty::Instant => json!({"type": "string", "format": "date-time"}),
        Ty::JsonArray => json!({"type": "array"}),
        Ty::JsonObject => json!({"type": "object"}),
        Ty::Ref(t) => {
            let mut s =
                json!({"type": "integer", "format": "int64", "minimum": 1, "description": format!("id in {t}")});
            if let Some(path) = collection_of(t) {
                s["x-collection"] = json!(path);
            }
            s
        }
        Ty::RefList(t) => {
            let mut items = json!({"type": "integer", "format": "int64", "minimum": 1});
            if let Some(path) = collection_of(t) {
                items["x-collection"] = json!(path);
            }
            json!({"type": "array", "maxItems": crate::resource::REF_LIST_MAX, "items": items, "description": format!("ids in {t}")})
        }
    };
    if nullable {
        if let Some(t) = s.get("type").cloned() {
            s["type"] = json!([t, "null"]);
        }
        if let Some(Value::Array(e)) = s.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    s
}

/// The path of the collection whose records live in `table` (the document's `x-collection` on a
/// reference: where a client finds the ids it may send).
fn collection_of(table: &str) -> Option<&'static str> {
    crate::resources::ALL_SPECS.iter().find(|s| s.table == table).map(|s| s.path)
}

/// A value of the type that the type's own checks accept (the document's `examples`).
fn ty_example(ty: Ty) -> Value {
    match ty {
        Ty::Int { min, max } => json!(1.clamp(min, max)),
        Ty::Real { min, max } => json!(1f64.clamp(min, max)),
        Ty::Text { min, max } => {
            let mut t = String::from("Sample");
            while t.chars().count() < min {
                t.push('x');
            }
            json!(t.chars().take(max).collect::<String>())
        }
        Ty::Ident { max } => json!("sample".chars().take(max).collect::<String>()),
        Ty::Bool => json!(false),
        Ty::Enum(v) => json!(v[0]),
        Ty::Date => json!("2026-12-01"),
        Ty::TimeOfDay => json!("09:00"),
        Ty::Color => json!("#336699"),
        Ty::Tel | Ty::LeadTel => json!("0312345678"),
        Ty::Instant => json!("2026-12-01T09:00:00+09:00"),
        Ty::JsonArray => json!([]),
        Ty::JsonObject => json!({}),
        Ty::Ref(_) => json!(1),
        Ty::RefList(_) => json!([1]),
    }
}

/// JSON Schema of a resource's field: its type's, with the field's pattern and one example that
/// the field's rules accept (null for a nullable field, unless the field names one).
pub fn field_schema(f: &Field) -> Value {
    let mut s = with_doc(ty_schema(f.ty, f.nullable), f.doc);
    if let Some(p) = f.pattern {
        s["pattern"] = json!(p);
    }
    let example = match f.example {
        Some(text) => serde_json::from_str(text).expect("a field's example is JSON"),
        None if f.nullable => Value::Null,
        None => ty_example(f.ty),
    };
    s["examples"] = json!([example]);
    s
}

fn with_doc(mut s: Value, doc: &str) -> Value {
    if !doc.is_empty() {
        let d = match s.get("description").and_then(Value::as_str) {
            Some(extra) => format!("{doc} {extra}"),
            None => doc.to_string(),
        };
        s["description"] = Value::from(d);
    }
    s
}

fn object(props: Map<String, Value>, required: Vec<&str>) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// Schemas for a resource: the record, its create body and its update body.
pub fn spec_schemas(spec: &Spec) -> Vec<(String, Value)> {
    let mut out_props = Map::new();
    out_props.insert("id".into(), json!({"type": "integer", "format": "int64"}));
    let mut out_req = vec!["id"];
    for f in spec.fields.iter().filter(|f| f.io != Io::WriteOnly) {
        out_props.insert(f.name.into(), field_schema(f));
        if f.column {
            out_req.push(f.name);
        }
    }
    for e in spec.extra {
        // A count is never null; another subquery finds nothing as null.
        let nullable = !e.expr.contains("COUNT(");
        out_props.insert(e.name.into(), with_doc(ty_schema(e.ty, nullable), e.doc));
        out_req.push(e.name);
    }
    let mut out = json!({"type": "object", "description": spec.doc, "properties": out_props, "required": out_req});
    if spec.hooks.decorate.is_some() {
        out["additionalProperties"] = json!({"type": "string"});
    }
    let writable = |f: &&Field, creating: bool| match f.io {
        Io::Rw | Io::WriteOnly => true,
        Io::CreateOnly => creating,
        Io::ReadOnly => false,
    };
    let mut create = Map::new();
    let mut create_req = vec![];
    let mut update = Map::new();
    for f in spec.fields {
        if writable(&f, true) {
            create.insert(f.name.into(), field_schema(f));
            if f.required {
                create_req.push(f.name);
            }
        }
        if writable(&f, false) {
            update.insert(f.name.into(), field_schema(f));
        }
    }
    vec![
        (spec.schema.to_string(), out),
        (format!("{}Create", spec.schema), object(create, create_req)),
        (format!("{}Update", spec.schema), object(update, vec![])),
    ]
}

pub fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn op(spec: &Spec, method: &'static str, path: &str, summary: String, roles: &[Role]) -> Op {
    Op {
        method,
        path: path.to_string(),
        summary,
        tag: spec.tag,
        roles: Some(roles.to_vec()),
        request: None,
        response: (200, "application/json", schema_ref(spec.schema)),
        errors: vec![401, 403, 404],
        query: vec![],
    }
}

pub fn list_op(spec: &Spec) -> Op {
    let mut o = op(spec, "get", spec.path, format!("List {} records", spec.schema), spec.read);
    o.response = (
        200,
        "application/json",
        json!({"type": "object", "required": ["items", "total", "limit", "offset"], "properties": {
            "items": {"type": "array", "items": schema_ref(spec.schema)},
            "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}}),
    );
    o.errors = vec![400, 401, 403];
    o.query.push((
        "limit".into(),
        json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
        "Page size.".into(),
    ));
    o.query.push(("offset".into(), json!({"type": "integer", "minimum": 0, "default": 0}), "Records to skip.".into()));
    let mut sorts = vec!["id".to_string(), "-id".to_string()];
    for f in spec.fields.iter().filter(|f| f.sort && f.column) {
        sorts.push(f.name.to_string());
        sorts.push(format!("-{}", f.name));
    }
    o.query.push((
        "sort".into(),
        json!({"type": "string", "enum": sorts}),
        "Sort field; prefix - for descending.".into(),
    ));
    for f in spec.fields.iter().filter(|f| f.filter && f.column) {
        o.query.push((f.name.into(), ty_schema(f.ty, false), format!("Only records whose {} equals this.", f.name)));
    }
    let searched: Vec<&str> = spec.fields.iter().filter(|f| f.search && f.column).map(|f| f.name).collect();
    if !searched.is_empty() {
        o.query.push((
            "q".into(),
            json!({"type": "string", "maxLength": 200}),
            format!(
                "Free text: records where every word appears in one of {} (case-insensitive; phone numbers also without separators).",
                searched.join(", ")
            ),
        ));
    }
    o
}

pub fn create_op(spec: &Spec) -> Op {
    let mut o = op(spec, "post", spec.path, format!("Create a {} record", spec.schema), spec.write);
    o.request = Some(("application/json", schema_ref(&format!("{}Create", spec.schema))));
    o.response.0 = 201;
    o.errors = vec![400, 401, 403, 409, 422];
    o
}

pub fn get_op(spec: &Spec, item: &str) -> Op {
    op(spec, "get", item, format!("Get one {} record", spec.schema), spec.read)
}

pub fn update_op(spec: &Spec, item: &str) -> Op {
    let mut o = op(spec, "patch", item, format!("Change fields of a {} record", spec.schema), spec.write);
    o.request = Some(("application/json", schema_ref(&format!("{}Update", spec.schema))));
    o.errors = vec![400, 401, 403, 404, 409, 422];
    o
}

pub fn delete_op(spec: &Spec, item: &str) -> Op {
    let mut o = op(spec, "delete", item, format!("Delete a {} record", spec.schema), spec.delete);
    o.response = (204, "", Value::Null);
    o.errors = vec![401, 403, 404, 409];
    o
}

fn error_description(code: u16) -> &'static str {
    match code {
        400 => "The request could not be read; `field` names the part.",
        401 => "No valid bearer token.",
        403 => "The caller's role may not do this.",
        404 => "No such record in the caller's tenant (records of other tenants answer the same).",
        409 => "Refused by a rule of the data (duplicate, running job, delete guard, limit).",
        413 => "The body is too large (refused by its Content-Length before it is read).",
        415 => "The body's content type or encoding is not accepted (JSON bodies need application/json).",
        422 => "A field's value is not acceptable; `field` names it.",
        423 => "The account is locked (ログインロック) after repeated wrong passwords; a manager unlocks it.",
        429 => "Too many attempts from this address or on this account; `Retry-After` says when to try again.",
        503 => "The server is busy (the message bus, or the password checks, are saturated); retry after `Retry-After` if given.",
        _ => "Error.",
    }
}

/// Builds the whole document.
pub fn document(ops: &[Op]) -> Value {
    let mut paths = Map::new();
    for o in ops {
        let api_path = o.path.clone();
        let entry = paths.entry(api_path).or_insert_with(|| json!({}));
        let mut params: Vec<Value> = Vec::new();
        let mut p = o.path.as_str();
        while let Some(start) = p.find('{') {
            let end = p[start..].find('}').map(|e| start + e).unwrap_or(p.len());
            let name = &p[start + 1..end];
            params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}));
            p = &p[end.min(p.len())..];
            if p.starts_with('}') {
                p = &p[1..];
            }
        }
        for (name, schema, doc) in &o.query {
            params.push(json!({"name": name, "in": "query", "required": false, "schema": schema, "description": doc}));
        }
        let mut responses = Map::new();
        let (code, ctype, schema) = &o.response;
        let ok = if ctype.is_empty() {
            json!({"description": "Done."})
        } else {
            json!({"description": "Success.", "content": {*ctype: {"schema": schema}}})
        };
        responses.insert(code.to_string(), ok);
        // Every JSON body may be refused for its type (415) or its size (413).
        let mut errors = o.errors.clone();
        if o.request.as_ref().is_some_and(|(ctype, _)| *ctype == "application/json") {
            errors.extend([413, 415]);
        }
        for e in &errors {
            responses.insert(
                e.to_string(),
                json!({"description": error_description(*e), "content": {"application/json": {"schema": schema_ref("Error")}}}),
            );
        }
        let description = match &o.roles {
            Some(r) if r.is_empty() => "No role may call this.".to_string(),
            Some(r) => format!("Roles: {}.", roles_text(r)),
            None => "No token needed.".to_string(),
        };
        let mut operation = json!({
            "summary": o.summary,
            "description": description,
            "tags": [o.tag],
            "operationId": format!("{}{}", o.method, o.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if o.roles.is_none() {
            operation["security"] = json!([]);
        }
        if let Some((ctype, schema)) = &o.request {
            operation["requestBody"] = json!({"required": true, "content": {*ctype: {"schema": schema}}});
        }
        entry[o.method] = operation;
    }
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "Machine-readable code, e.g. invalid_field, not_found, forbidden."},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "The field, parameter or body part at fault."}}}}}),
    );
    for spec in crate::resources::ALL_SPECS {
        for (name, s) in spec_schemas(spec) {
            schemas.insert(name, s);
        }
    }
    for (name, s) in crate::custom::schemas()
        .into_iter()
        .chain(crate::import::schemas())
        .chain(crate::recordings::schemas())
        .chain(crate::reports::schemas())
        .chain(crate::phonebook::schemas())
        .chain(crate::callbacks::schemas())
    {
        schemas.insert(name.to_string(), s);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "kakeru admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Outbound contact-center configuration, lead import and records. Every record belongs to the caller's tenant; roles are checked on every endpoint."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
        "paths": paths,
    })
}

/// A docs page that renders /openapi.json with no external assets.
pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::validate;

    /// Every example the document gives for a resource's field passes the field's own check on
    /// the server.
    #[test]
    fn field_examples_pass_the_fields_checks() {
        let mut checked = 0;
        for spec in crate::resources::ALL_SPECS {
            for f in spec.fields.iter().filter(|f| f.io != Io::ReadOnly) {
                let s = field_schema(f);
                let example = &s["examples"][0];
                if example.is_null() {
                    assert!(f.nullable, "{}.{}: null example for a field that is not nullable", spec.schema, f.name);
                    continue;
                }
                if let Err(e) = validate(f, example) {
                    panic!("{}.{}: example {example} refused: {e:?}", spec.schema, f.name);
                }
                checked += 1;
            }
        }
        assert!(checked > 60, "only {checked} examples checked");
    }

    /// The login's example is one the server's login rule accepts.
    #[test]
    fn login_example_is_a_valid_login() {
        let f = crate::resources::USERS.fields.iter().find(|f| f.name == "login").unwrap();
        let s = field_schema(f);
        assert!(store::accounts::login_id_ok(s["examples"][0].as_str().unwrap()));
        assert_eq!(s["pattern"], "^[A-Za-z0-9]{3,15}$");
    }

    /// A reference names the collection its ids come from.
    #[test]
    fn references_name_their_collection() {
        let s = ty_schema(Ty::Ref("customer_lists"), false);
        assert_eq!(s["x-collection"], "/lists");
        let s = ty_schema(Ty::RefList("users"), false);
        assert_eq!(s["items"]["x-collection"], "/users");
    }
}
