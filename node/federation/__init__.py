"""Federation: following other Stave nodes over WebSub and conditional GET (PROTOCOL §6, §7).

- `http`: the one guarded client every outbound request goes through;
- `discovery`: reading and checking a node's `/.well-known/stave` document;
- `follows`: follow, unfollow, sync (verify and accept a feed, all or nothing);
- `mirror`: fetching a followed artist's content by CID and removing withdrawn content;
- `hub`: this node as the WebSub hub of its own feed;
- `subscriber`: subscribing to other nodes' hubs and checking their deliveries;
- `runtime`: the background work of a running node (polling, push, deliveries, renewals).
"""
