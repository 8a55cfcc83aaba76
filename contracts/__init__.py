"""Message contracts shared by the API and the reactor.

The only package both processes import: command and notice structs, the
read-model records, and the names and settings of the JetStream streams and
KV buckets they meet on.
"""
