//! `djangoish`: a Django-flavoured app — `settings`, `urlpatterns` (`path(route, view)`, routes
//! without the leading slash) and a middleware chain wrapped around the view, outermost first.

use app_abi::{export_app, App, InitContext, Logger, Request, Response};
use std::time::Instant;

/// `settings.py`.
pub struct Settings {
    /// `DEBUG`: a 404 lists the URL patterns tried.
    pub debug: bool,
    /// `X_FRAME_OPTIONS`, sent by [`SecurityMiddleware`].
    pub x_frame_options: &'static str,
    /// The site name used in pages.
    pub site_name: &'static str,
}

/// A view: `def view(request)`.
pub type View = fn(&Settings, &mut Request<'_>) -> Response;

/// One URL pattern.
pub struct UrlPattern {
    route: &'static str,
    view: View,
    name: &'static str,
}

/// `path(route, view, name=...)`.
pub fn path(route: &'static str, view: View, name: &'static str) -> UrlPattern {
    UrlPattern { route, view, name }
}

/// What a middleware calls to run the rest of the chain (and finally the view).
pub type Next<'n> = &'n dyn Fn(&mut Request<'_>) -> Response;

/// A middleware: may act before the view, short-circuit, or change the response.
pub trait Middleware: Send + Sync {
    /// Handles `req`, calling `next` for the rest of the chain.
    fn process(&self, req: &mut Request<'_>, next: Next<'_>) -> Response;
}

/// Adds `X-Frame-Options` and `X-Content-Type-Options: nosniff`.
pub struct SecurityMiddleware {
    x_frame_options: &'static str,
}

impl Middleware for SecurityMiddleware {
    fn process(&self, req: &mut Request<'_>, next: Next<'_>) -> Response {
        next(req)
            .header("X-Frame-Options", self.x_frame_options)
            .header("X-Content-Type-Options", "nosniff")
    }
}

/// Times the rest of the chain: logs at debug and adds `X-Request-Duration-Us`.
pub struct TimingMiddleware {
    logger: Logger,
}

impl Middleware for TimingMiddleware {
    fn process(&self, req: &mut Request<'_>, next: Next<'_>) -> Response {
        let start = Instant::now();
        let response = next(req);
        let us = start.elapsed().as_micros();
        self.logger.debug(&format!(
            "djangoish: {} {} -> {} in {us}us",
            req.method(),
            req.path_str(),
            response.status_code()
        ));
        response.header("X-Request-Duration-Us", us.to_string())
    }
}

/// The project: settings, URL patterns and middleware.
pub struct Djangoish {
    settings: Settings,
    urlpatterns: Vec<UrlPattern>,
    middleware: Vec<Box<dyn Middleware>>,
}

impl Djangoish {
    fn resolve(&self, req: &mut Request<'_>) -> Response {
        let path = req.path_str();
        let route = path.strip_prefix('/').unwrap_or(&path);
        match self.urlpatterns.iter().find(|p| p.route == route) {
            Some(p) => (p.view)(&self.settings, req),
            None if self.settings.debug => {
                let tried: Vec<&str> = self.urlpatterns.iter().map(|p| p.name).collect();
                Response::text(
                    404,
                    format!("Page not found: {path}\nTried: {}\n", tried.join(", ")),
                )
            }
            None => Response::not_found(),
        }
    }

    /// Runs middleware `i..` and then the view.
    fn run(&self, i: usize, req: &mut Request<'_>) -> Response {
        match self.middleware.get(i) {
            Some(m) => m.process(req, &|req| self.run(i + 1, req)),
            None => self.resolve(req),
        }
    }
}

fn hello(_settings: &Settings, _req: &mut Request<'_>) -> Response {
    Response::text(200, "Hello world from Djangoish!\n")
}

fn index(settings: &Settings, _req: &mut Request<'_>) -> Response {
    Response::html(
        200,
        format!(
            "<h1>{}</h1><p>It worked! See <a href=\"/hello\">/hello</a>.</p>\n",
            settings.site_name
        ),
    )
}

impl App for Djangoish {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        let settings = Settings {
            debug: false,
            x_frame_options: "DENY",
            site_name: "Djangoish",
        };
        let middleware: Vec<Box<dyn Middleware>> = vec![
            Box::new(TimingMiddleware {
                logger: ctx.logger(),
            }),
            Box::new(SecurityMiddleware {
                x_frame_options: settings.x_frame_options,
            }),
        ];
        Ok(Djangoish {
            settings,
            urlpatterns: vec![path("", index, "index"), path("hello", hello, "hello")],
            middleware,
        })
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        self.run(0, req)
    }
}

export_app!(app, Djangoish, name = "djangoish", version = "1.0");
