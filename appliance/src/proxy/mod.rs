//! The reverse proxy: HTTP/1.1 and HTTP/2 on `proxy.http_listen` and `proxy.https_listen`,
//! routing by Host through a route table swapped atomically, to the apps' backends.
