def app(environ, start_response):
    """A barebones WSGI application.

    This is a starting point for your own Web framework :)
    """
    status = '200 OK'
    response_headers = [('Content-Type', 'text/plain')]
    start_response(status, response_headers)
    # PEP 3333 (Python 3): the body is bytes. The article's Python 2 original returned a str.
    return [b'Hello world from a simple WSGI application!\n']
