"""
A fake of the Hub's HTTP API for huggingface_hub's real client: the Hub cannot be reached from the test machines, so
only the HTTP transport is replaced (an `httpx2.MockTransport` installed with `huggingface_hub.set_client_factory`).
"""

import base64
import json

import httpx2

REPO_ID = "user/ddpm-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """
    The Hub's HTTP API for the repository `REPO_ID` at commit `COMMIT`, as huggingface_hub's client calls it: repo
    info, file tree and downloads of `files`; repository creation, model-card validation, pre-upload and commit, of
    which it records the created repositories and the committed files.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[httpx2.Request] = []
        self.created_repos: list[dict] = []
        self.commits: list[dict] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        path = request.url.path
        model_api = f"/api/models/{REPO_ID}"
        if path == "/api/repos/create":
            self.created_repos.append(json.loads(request.content))
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{REPO_ID}", "name": REPO_ID})
        if path in (model_api, f"{model_api}/revision/main", f"{model_api}/revision/{COMMIT}"):
            siblings = [{"rfilename": name} for name in self.files]
            return httpx2.Response(200, json={"id": REPO_ID, "sha": COMMIT, "siblings": siblings})
        if path == f"{model_api}/tree/{COMMIT}":
            tree = [
                {"type": "file", "path": name, "size": len(data), "oid": str(hash(data))}
                for name, data in self.files.items()
            ]
            return httpx2.Response(200, json=tree)
        if path.startswith(f"/{REPO_ID}/resolve/{COMMIT}/"):
            data = self.files[path.removeprefix(f"/{REPO_ID}/resolve/{COMMIT}/")]
            headers = {"x-repo-commit": COMMIT, "etag": f'"{hash(data)}"', "content-length": str(len(data))}
            return httpx2.Response(200, headers=headers, content=b"" if request.method == "HEAD" else data)
        if path == "/api/validate-yaml":
            # The client has the server check a README's metadata before committing it; the check is the Hub's own.
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if path == f"{model_api}/preupload/main":
            files = json.loads(request.content)["files"]
            modes = [{"path": file["path"], "uploadMode": "regular", "shouldIgnore": False} for file in files]
            return httpx2.Response(200, json={"files": modes, "commitOid": COMMIT})
        if path == f"{model_api}/commit/main":
            lines = [json.loads(line) for line in request.content.decode().splitlines()]
            self.commits.append(
                {
                    "summary": lines[0]["value"]["summary"],
                    "files": {
                        line["value"]["path"]: base64.b64decode(line["value"]["content"])
                        for line in lines
                        if line["key"] == "file"
                    },
                }
            )
            return httpx2.Response(
                200, json={"commitUrl": f"https://huggingface.co/{REPO_ID}/commit/{COMMIT}", "commitOid": COMMIT}
            )
        return httpx2.Response(404, json={"error": f"FakeHub does not serve {request.method} {path}"})

    def repository_requests(self) -> list[httpx2.Request]:
        """The requests about the repository (not the client's own look-ups, such as its agent registry)."""
        return [
            request for request in self.requests if REPO_ID in request.url.path or "/api/repos/" in request.url.path
        ]
