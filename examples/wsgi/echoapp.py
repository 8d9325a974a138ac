"""The WSGI echo app: the test contract of the Rust `echo` sample app, in WSGI.

Answers JSON with the method, decoded path, raw query, request headers, and the body's length and
SHA-256 — read through wsgi.input the way `?read=` asks (all: read(CONTENT_LENGTH); readall: read(); chunks: read(n) in a loop; lines;
readlines; iter), so
each way of reading the body is checked against what the client sent.
"""
import hashlib
import json
from urllib.parse import parse_qs

CHUNK = 7919  # a prime: chunk edges fall everywhere


def _read_body(stream, how, content_length):
    if how == 'chunks':
        parts = []
        while True:
            part = stream.read(CHUNK)
            if not part:
                return b''.join(parts)
            parts.append(part)
    if how == 'lines':
        parts = []
        while True:
            line = stream.readline()
            if not line:
                return b''.join(parts)
            parts.append(line)
    if how == 'readlines':
        return b''.join(stream.readlines())
    if how == 'iter':
        return b''.join(line for line in stream)
    if how == 'readall':
        return stream.read()
    length = int(content_length or 0)
    return stream.read(length) if content_length else stream.read(-1)


def app(environ, start_response):
    query = environ.get('QUERY_STRING', '')
    how = parse_qs(query).get('read', ['all'])[0]
    body = _read_body(environ['wsgi.input'], how, environ.get('CONTENT_LENGTH'))
    headers = {}
    for key, value in environ.items():
        if key.startswith('HTTP_'):
            headers[key[5:].replace('_', '-').lower()] = value
        elif key in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            headers[key.replace('_', '-').lower()] = value
    answer = {
        'method': environ['REQUEST_METHOD'],
        # PEP 3333: environ strings carry the raw bytes as latin-1 code points.
        'path': environ['PATH_INFO'].encode('latin-1').decode('utf-8', 'replace'),
        'query': query,
        'headers': headers,
        'body_len': len(body),
        'body_sha256': hashlib.sha256(body).hexdigest(),
        'wsgi': {
            'version': list(environ['wsgi.version']),
            'url_scheme': environ['wsgi.url_scheme'],
            'multithread': environ['wsgi.multithread'],
            'multiprocess': environ['wsgi.multiprocess'],
            'run_once': environ['wsgi.run_once'],
            'input_terminated': environ.get('wsgi.input_terminated'),
            'file_wrapper': callable(environ.get('wsgi.file_wrapper')),
            'errors': all(hasattr(environ['wsgi.errors'], m) for m in ('write', 'writelines', 'flush')),
        },
        'script_name': environ['SCRIPT_NAME'],
        'server_port': environ['SERVER_PORT'],
        'server_protocol': environ['SERVER_PROTOCOL'],
        # The TLS client certificate's variables, as the Rust echo app's "ssl_client".
        'ssl_client': {k: v for k, v in environ.items() if k.startswith('SSL_CLIENT_')},
    }
    payload = json.dumps(answer, sort_keys=True).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [payload]
