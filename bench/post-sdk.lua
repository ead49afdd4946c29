-- wrk script: the chat request as the openai SDK's AzureOpenAI client sends it (the headers
-- and their order captured from openai 1.x for Python; a real client's request has about
-- twenty headers, where post.lua has three). Body from $WRK_BODY as in post.lua.
wrk.method = "POST"
wrk.headers["Accept-Encoding"] = "gzip, deflate"
wrk.headers["Connection"] = "keep-alive"
wrk.headers["api-key"] = "bench-key"
wrk.headers["accept"] = "application/json"
wrk.headers["content-type"] = "application/json"
wrk.headers["user-agent"] = "AzureOpenAI/Python 1.54.0"
wrk.headers["x-stainless-lang"] = "python"
wrk.headers["x-stainless-package-version"] = "1.54.0"
wrk.headers["x-stainless-os"] = "Linux"
wrk.headers["x-stainless-arch"] = "x64"
wrk.headers["x-stainless-runtime"] = "CPython"
wrk.headers["x-stainless-runtime-version"] = "3.11.7"
wrk.headers["x-stainless-async"] = "false"
wrk.headers["x-stainless-retry-count"] = "0"
wrk.headers["x-stainless-read-timeout"] = "600"
wrk.body = os.getenv("WRK_BODY") or '{"messages":[{"role":"user","content":"Hello"}],"model":"m"}'
