"""Run the benchmark app under a process-restart peer's server.

``python serve.py werkzeug --port N --reloader stat|watchdog`` is Flask's own
``app.run(debug=True)`` path; ``hupper -m serve waitress --port N`` is
pserve's ``--reload`` path (hupper restarting a waitress worker);
``python serve.py waitress --port N --hupper-interval 0.1`` is the same through
hupper's API at a ``reload_interval`` its command line cannot take (whole seconds,
at least 1).
"""

from __future__ import annotations

import argparse

from app.wsgi import app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("server", choices=["werkzeug", "waitress"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reloader", default="stat", choices=["stat", "watchdog"])
    parser.add_argument("--hupper-interval", type=float)
    args = parser.parse_args()
    if args.hupper_interval is not None:
        import hupper

        hupper.start_reloader(
            "serve.run_waitress",
            reload_interval=args.hupper_interval,
            worker_kwargs={"port": args.port},
        )
        return
    if args.server == "werkzeug":
        from werkzeug.serving import run_simple

        run_simple(
            "127.0.0.1",
            args.port,
            app,
            use_reloader=True,
            reloader_type=args.reloader,
            threaded=True,
        )
    else:
        run_waitress(args.port)


def run_waitress(port: int) -> None:
    import waitress

    waitress.serve(app, host="127.0.0.1", port=port, threads=4)


if __name__ == "__main__":
    main()
