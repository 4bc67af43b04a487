import sys

from bottle import Bottle, run

app = Bottle()


@app.route('/hello')
def hello():
    return "Hello World!"


if __name__ == '__main__':
    run(app, host='127.0.0.1', port=int(sys.argv[1]), reloader=True, quiet=True)
