from django.shortcuts import render

MARKER = "bench-edit-00000"


def index(request):
    return render(request, "polls/index.html", {"marker": MARKER})
