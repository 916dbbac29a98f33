//! What the admin console (`/ui/admin`) builds its screens from: `GET /console/specs`, the
//! registry's resource specs and operations as the caller's role sees them.
//!
//! The console has no list of fields of its own: a resource's list, view and form come from its
//! [`Spec`] (a field's type picks the input and the column, its access whether it is shown and
//! editable), and whether a button is there from the operations of the registry the caller's role
//! may call (the same list that builds the router and the OpenAPI document, so the page offers
//! exactly what the server allows). The page only hides; the server still decides every request.

use axum::extract::State;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};
use store::accounts::Role;

use crate::auth::Auth;
use crate::resource::{Field, Io, Spec, Ty};
use crate::resources::{ALL, ALL_SPECS};
use crate::{AppState, Op, Registry};

pub fn mount(reg: &mut Registry) {
    let o = Op {
        method: "get",
        path: "/console/specs".into(),
        summary:
            "The resources, their fields and the operations the caller's role may use (the admin console's screens)"
                .into(),
        tag: "accounts",
        roles: Some(ALL.to_vec()),
        request: None,
        response: (200, "application/json", json!({"type": "object", "required": ["role", "resources", "ops"]})),
        errors: vec![401],
        query: vec![],
    };
    reg.add(o, get(specs));
}

async fn specs(State(st): State<AppState>, auth: Auth) -> Json<Value> {
    Json(document(&st.ops, auth.role()))
}

/// Whether `role` may call `method path` (an operation of the registry).
pub fn allowed(ops: &[Op], role: Role, method: &str, path: &str) -> bool {
    ops.iter().any(|o| {
        o.method.eq_ignore_ascii_case(method) && o.path == path && o.roles.as_ref().is_none_or(|r| r.contains(&role))
    })
}

fn ty_json(ty: Ty) -> Value {
    match ty {
        Ty::Int { min, max } => json!({"kind": "int", "min": min, "max": max}),
        Ty::Real { min, max } => json!({"kind": "real", "min": min, "max": max}),
        Ty::Text { min, max } => json!({"kind": "text", "min": min, "max": max}),
        Ty::Ident { max } => json!({"kind": "ident", "min": 1, "max": max}),
        Ty::Bool => json!({"kind": "bool"}),
        Ty::Enum(options) => json!({"kind": "enum", "options": options}),
        Ty::Date => json!({"kind": "date"}),
        Ty::TimeOfDay => json!({"kind": "time"}),
        Ty::Color => json!({"kind": "color"}),
        Ty::Tel | Ty::LeadTel => json!({"kind": "tel"}),
        Ty::Instant => json!({"kind": "instant"}),
        Ty::JsonArray => json!({"kind": "list"}),
        Ty::JsonObject => json!({"kind": "object"}),
        Ty::Ref(table) => json!({"kind": "ref", "table": table}),
        Ty::RefList(table) => json!({"kind": "refs", "table": table}),
    }
}

fn field_json(f: &Field) -> Value {
    let io = match f.io {
        Io::Rw => "rw",
        Io::CreateOnly => "create",
        Io::ReadOnly => "read",
        Io::WriteOnly => "write",
    };
    json!({
        "name": f.name, "type": ty_json(f.ty), "io": io, "required": f.required, "nullable": f.nullable,
        "filter": f.filter && f.column, "sort": f.sort && f.column, "search": f.search && f.column, "doc": f.doc,
    })
}

fn key(spec: &Spec) -> &'static str {
    spec.path.trim_start_matches('/')
}

/// The console's document for one role.
pub fn document(ops: &[Op], role: Role) -> Value {
    let readable: Vec<&Spec> = ALL_SPECS.iter().copied().filter(|s| allowed(ops, role, "get", s.path)).collect();
    let resources: Vec<Value> = readable
        .iter()
        .map(|spec| {
            let item = format!("{}/{{id}}", spec.path);
            // Lists of other resources filtered by a reference to this one (a campaign's result codes).
            let children: Vec<Value> = readable
                .iter()
                .flat_map(|other| {
                    other.fields.iter().filter_map(move |f| match f.ty {
                        Ty::Ref(table) if table == spec.table && f.filter && f.column => {
                            Some(json!({"key": key(other), "field": f.name}))
                        }
                        _ => None,
                    })
                })
                .collect();
            json!({
                "key": key(spec),
                "path": spec.path,
                "table": spec.table,
                "schema": spec.schema,
                "tag": spec.tag,
                "doc": spec.doc,
                "can": {
                    "create": spec.creatable && allowed(ops, role, "post", spec.path),
                    "update": spec.updatable && allowed(ops, role, "patch", &item),
                    "delete": allowed(ops, role, "delete", &item),
                },
                "fields": spec.fields.iter().map(field_json).collect::<Vec<_>>(),
                "extra": spec.extra.iter().map(|e| json!({"name": e.name, "type": ty_json(e.ty), "doc": e.doc})).collect::<Vec<_>>(),
                "children": children,
            })
        })
        .collect();
    let mine: Vec<Value> = ops
        .iter()
        .filter(|o| o.roles.as_ref().is_none_or(|r| r.contains(&role)))
        .map(|o| json!({"method": o.method.to_ascii_lowercase(), "path": o.path}))
        .collect();
    json!({ "role": role, "resources": resources, "ops": mine })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_follow_the_registry() {
        let ops = crate::operations();
        let doc = |role| document(&ops, role);
        let res = |d: &Value, k: &str| d["resources"].as_array().unwrap().iter().find(|r| r["key"] == k).cloned();
        let sv = doc(Role::Sv);
        let campaigns = res(&sv, "campaigns").expect("SV reads campaigns");
        assert_eq!(campaigns["can"], json!({"create": true, "update": true, "delete": false}));
        let children: Vec<&str> =
            campaigns["children"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert!(children.contains(&"result-codes") && children.contains(&"batches"), "{children:?}");
        let mgr = doc(Role::Mgr);
        assert_eq!(res(&mgr, "campaigns").unwrap()["can"]["delete"], true);
        // OP reads no users; BY reads lists but not campaigns.
        assert!(res(&doc(Role::Op), "users").is_none());
        let by = doc(Role::By);
        assert!(res(&by, "lists").is_some() && res(&by, "campaigns").is_none());
        // Read-only records have no buttons.
        assert_eq!(
            res(&mgr, "call-records").unwrap()["can"],
            json!({"create": false, "update": false, "delete": false})
        );
        let jobs = res(&mgr, "call-jobs").unwrap();
        let lists = jobs["fields"].as_array().unwrap().iter().find(|f| f["name"] == "list_ids").cloned().unwrap();
        assert_eq!(lists["type"], json!({"kind": "refs", "table": "customer_lists"}));
    }
}
