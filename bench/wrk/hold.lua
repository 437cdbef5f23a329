-- wrk script: every request places a one-ticket GA hold (admin token, for user u1).
-- Usage: see bench/wrk/run.sh.
wrk.method = "POST"
wrk.body = '{"user_id":"u1","items":[{"section_id":"ga","qty":1}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BOXOFFICE_ADMIN_TOKEN") or "bench-admin")
