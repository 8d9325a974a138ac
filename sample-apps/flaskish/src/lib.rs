//! `flaskish`: a Flask-flavoured app — a route table filled by decorator-like registration calls:
//!
//! ```python
//! app = Flask(__name__)
//!
//! @app.route("/hello")
//! def hello(): return "Hello world from Flaskish!\n"
//! ```
//!
//! Routes match the exact path; a route registered for given methods answers 405 to others.

use app_abi::{export_app, App, InitContext, Request, Response};

/// A handler: `fn(request) -> response`.
pub type Handler = fn(&Flask, &mut Request<'_>) -> Response;

struct Rule {
    path: &'static str,
    methods: &'static [&'static str],
    handler: Handler,
}

/// The application object: a name and its route table.
pub struct Flask {
    name: &'static str,
    rules: Vec<Rule>,
}

impl Flask {
    /// `Flask(__name__)`.
    pub fn new(name: &'static str) -> Flask {
        Flask {
            name,
            rules: Vec::new(),
        }
    }

    /// `@app.route(path)`: GET and HEAD.
    pub fn route(&mut self, path: &'static str, handler: Handler) -> &mut Flask {
        self.route_methods(path, &["GET", "HEAD"], handler)
    }

    /// `@app.route(path, methods=[...])`.
    pub fn route_methods(
        &mut self,
        path: &'static str,
        methods: &'static [&'static str],
        handler: Handler,
    ) -> &mut Flask {
        self.rules.push(Rule {
            path,
            methods,
            handler,
        });
        self
    }

    fn dispatch(&self, req: &mut Request<'_>) -> Response {
        let path = req.path();
        let mut allowed: Vec<&str> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.path.as_bytes() == path) {
            if rule.methods.contains(&req.method()) {
                return (rule.handler)(self, req);
            }
            allowed.extend_from_slice(rule.methods);
        }
        if allowed.is_empty() {
            Response::not_found()
        } else {
            Response::text(405, "Method Not Allowed\n").header("Allow", allowed.join(", "))
        }
    }
}

/// A JSON string literal (RFC 8259 §7).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hello(_flask: &Flask, _req: &mut Request<'_>) -> Response {
    Response::text(200, "Hello world from Flaskish!\n")
}

fn index(_flask: &Flask, _req: &mut Request<'_>) -> Response {
    Response::html(
        200,
        "<h1>Flaskish</h1><p>Try <a href=\"/hello\">/hello</a>.</p>\n",
    )
}

fn api_info(flask: &Flask, req: &mut Request<'_>) -> Response {
    let routes: Vec<String> = flask.rules.iter().map(|r| json_str(r.path)).collect();
    let body = format!(
        "{{\"app\":{},\"framework\":\"flaskish\",\"version\":\"1.0\",\"method\":{},\"path\":{},\"routes\":[{}]}}",
        json_str(flask.name),
        json_str(req.method()),
        json_str(&req.path_str()),
        routes.join(",")
    );
    Response::json(200, body)
}

fn api_echo(_flask: &Flask, req: &mut Request<'_>) -> Response {
    match req.read_body() {
        Ok(body) => Response::json(
            200,
            format!(
                "{{\"received\":{}}}",
                json_str(&String::from_utf8_lossy(&body))
            ),
        ),
        Err(e) => {
            req.warn(&format!("flaskish: reading the body failed: {e}"));
            Response::json(400, format!("{{\"error\":{}}}", json_str(&e.to_string())))
        }
    }
}

/// The exported app.
pub struct Flaskish(Flask);

impl App for Flaskish {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        let mut flask = Flask::new("flaskish");
        flask
            .route("/", index)
            .route("/hello", hello)
            .route("/api/info", api_info)
            .route_methods("/api/echo", &["POST"], api_echo);
        Ok(Flaskish(flask))
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        self.0.dispatch(req)
    }
}

export_app!(app, Flaskish, name = "flaskish", version = "1.0");
