use app_abi::{export_app, App, InitContext, Request, Response};

pub struct Hello;

impl App for Hello {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Hello) // an Err(message) refuses the load: "init failed: message"
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        // `?name=J%C3%BCrgen` arrives percent-decoded; absent, it is "world".
        let name = req.query_get("name").unwrap_or_else(|| "world".into());
        Response::text(200, format!("Hello, {name}! path={}\n", req.path_str()))
    }
}

export_app!(app, Hello, name = "{{name}}", version = "0.1.0");
