//! `pyramidish`: a Pyramid-flavoured app, after the article's `pyramidapp.py`:
//!
//! ```python
//! config = Configurator()
//! config.add_route('hello', '/hello')
//! config.add_view(hello_world, route_name='hello')
//! app = config.make_wsgi_app()
//! ```
//!
//! Routes are matched in the order they were added; a pattern segment `{name}` matches one path
//! segment and lands in the view's `matchdict`.

use app_abi::{export_app, App, InitContext, Request, Response};

/// What a view gets: the request plus the `{placeholders}` its route matched.
pub struct ViewRequest<'r, 'a> {
    /// The underlying request.
    pub request: &'r mut Request<'a>,
    /// `(placeholder, matched segment)` pairs, in pattern order.
    pub matchdict: Vec<(String, String)>,
}

impl ViewRequest<'_, '_> {
    /// A matched placeholder by name.
    pub fn matched(&self, name: &str) -> Option<&str> {
        self.matchdict
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A view callable.
pub type View = fn(&mut ViewRequest<'_, '_>) -> Response;

struct Route {
    name: String,
    segments: Vec<String>,
    view: Option<View>,
}

/// Collects routes and views, then builds the app (`make_wsgi_app`).
#[derive(Default)]
pub struct Configurator {
    routes: Vec<Route>,
}

impl Configurator {
    /// An empty configuration.
    pub fn new() -> Configurator {
        Configurator::default()
    }

    /// `config.add_route(name, pattern)`.
    pub fn add_route(&mut self, name: &str, pattern: &str) {
        self.routes.push(Route {
            name: name.to_owned(),
            segments: split(pattern).map(str::to_owned).collect(),
            view: None,
        });
    }

    /// `config.add_view(view, route_name=...)`; fails for an unknown route name.
    pub fn add_view(&mut self, route_name: &str, view: View) -> Result<(), String> {
        let route = self
            .routes
            .iter_mut()
            .find(|r| r.name == route_name)
            .ok_or_else(|| format!("add_view: no route named {route_name:?}"))?;
        route.view = Some(view);
        Ok(())
    }

    /// `config.make_wsgi_app()`: fails if a route has no view.
    pub fn make_wsgi_app(self) -> Result<Router, String> {
        if let Some(r) = self.routes.iter().find(|r| r.view.is_none()) {
            return Err(format!("route {:?} has no view", r.name));
        }
        Ok(Router {
            routes: self.routes,
        })
    }
}

/// The built app: a route table.
pub struct Router {
    routes: Vec<Route>,
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl Router {
    fn dispatch(&self, req: &mut Request<'_>) -> Response {
        let path = req.path_str().into_owned();
        for route in &self.routes {
            if let Some(matchdict) = match_route(&route.segments, &path) {
                let view = route.view.expect("checked by make_wsgi_app");
                return view(&mut ViewRequest {
                    request: req,
                    matchdict,
                });
            }
        }
        Response::not_found()
    }
}

fn match_route(pattern: &[String], path: &str) -> Option<Vec<(String, String)>> {
    let mut matchdict = Vec::new();
    let mut segs = split(path);
    for p in pattern {
        let seg = segs.next()?;
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => matchdict.push((name.to_owned(), seg.to_owned())),
            None if p == seg => {}
            None => return None,
        }
    }
    segs.next().is_none().then_some(matchdict)
}

fn hello_world(_req: &mut ViewRequest<'_, '_>) -> Response {
    Response::text(200, "Hello world from Pyramidish!\n")
}

fn hello_name(req: &mut ViewRequest<'_, '_>) -> Response {
    let name = req.matched("name").unwrap_or("stranger");
    Response::text(200, format!("Hello {name} from Pyramidish!\n"))
}

/// The exported app.
pub struct Pyramidish(Router);

impl App for Pyramidish {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        let mut config = Configurator::new();
        config.add_route("hello", "/hello");
        config.add_view("hello", hello_world)?;
        config.add_route("hello_name", "/hello/{name}");
        config.add_view("hello_name", hello_name)?;
        Ok(Pyramidish(config.make_wsgi_app()?))
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        self.0.dispatch(req)
    }
}

export_app!(app, Pyramidish, name = "pyramidish", version = "1.0");
