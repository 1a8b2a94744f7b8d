//! Completes the generated OpenAPI document: title, the bearer security scheme, and the error
//! answers every operation can give (auth, bad parameters or bodies, internal errors).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, ResponseBuilder,
};

/// Name of the security scheme.
const BEARER: &str = "bearer";

pub(crate) fn finish(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("RVS REST API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Configuration and live state of the RVS L4 load balancer (the REST face of \
             ipvsadm). Every change is validated in full and applied atomically. With a \
             configured token every request needs `Authorization: Bearer <token>`; without \
             one only loopback clients are served.",
        ))
        .build();
    let components = api.components.get_or_insert_with(Components::new);
    components.security_schemes.insert(
        BEARER.to_owned(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build(),
        )),
    );
    // Either no credentials (loopback, no token configured) or the bearer token.
    api.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
    ]);
    for item in api.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_errors(op);
        }
    }
    api
}

fn add_errors(op: &mut Operation) {
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    if has_params || has_body {
        add(
            "400",
            "A parameter or the body does not parse (`field` names it)",
        );
    }
    if has_body {
        add("413", "The body is too large");
        add("415", "The body is not `Content-Type: application/json`");
    }
    add(
        "401",
        "A token is configured and the request lacks `Authorization: Bearer <token>`",
    );
    add(
        "403",
        "No token is configured and the client is not on loopback",
    );
    add("500", "Internal error");
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}
