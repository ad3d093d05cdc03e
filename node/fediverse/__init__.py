"""The fediverse (ActivityPub) side of a node: how other servers find, follow and hear from it.

Its modules, from the bottom up: `httpsig` signs and verifies HTTP requests (draft-cavage-12 and
RFC 9421) and `digest` the body digests they cover; `documents` the actor, WebFinger and
NodeInfo documents and every URL; `notes` the post of a track and its activities; `outbox`
turns catalog changes into posts and queued deliveries; `remote` fetches other servers' actors
and keys, signed; `inbox` judges and handles what they send; `delivery` drains the queue;
`followers` is what the artist does with followers and blocks; `runtime` runs it all in `stave
run`. The tables are `node/catalog/fediverse.py`; the routes `node/web/fediverse.py`.
"""
