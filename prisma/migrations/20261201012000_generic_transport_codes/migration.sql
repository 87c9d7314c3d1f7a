-- Transport failures used to be stored under the socket's own error code, which the api
-- echoes (connection view, 503 messages) and which told a caller what sits at an address
-- (refused, reset, timed out: a port scanner). Refreshes now store the egress client's
-- generic codes; rows written before keep theirs until their next refresh, so they are
-- rewritten here once. (connection_events is append-only and keeps its history.)
UPDATE "connections"
   SET "lastErrorCode" = 'unreachable',
       "lastErrorMessage" = 'token endpoint unreachable or timed out'
 WHERE "lastErrorCode" IN (
   'econnrefused', 'econnreset', 'econnaborted', 'etimedout', 'esockettimedout',
   'enotfound', 'eai_again', 'ehostunreach', 'enetunreach', 'epipe', 'eproto',
   'err_bad_response', 'err_socket_connection_timeout', 'err_canceled', 'network_error'
 );
