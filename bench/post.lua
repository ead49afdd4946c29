-- wrk script for bench/run.sh: POST the JSON body given in $WRK_BODY.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY") or '{"messages":[{"role":"user","content":"Hello"}],"model":"m"}'
