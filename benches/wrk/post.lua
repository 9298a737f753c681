-- POSTs an empty body to the URL given to wrk, e.g.
--   wrk -t2 -c64 -d20s --latency -s benches/wrk/post.lua http://127.0.0.1:8001/enqueue
wrk.method = "POST"
wrk.body = ""
wrk.headers["Content-Length"] = "0"
