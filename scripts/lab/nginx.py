"""A real nginx in the gateway namespace, running Gatewarden's companion config (deploy/nginx/).

gatewarden.conf is included at http level and example-server.conf as the server, both as shipped except
for what a lab must change, each change checked to apply (a missing anchor is an error, not a silent
difference): the certificate paths and the log path point into the lab's folder, the server also listens
on 8443 (the default policy's auth port), and it gets a `location = /` proxied to the backend for the
legitimate clients (example-server.conf says to add your own locations). The backend the example
proxies to (127.0.0.1:8080) is a second server of the same nginx answering `ok`.

One worker, pinned to CPU 1 (the generators run on CPU 0), with nginx's default worker_connections of 512.
nginx is started afresh for every run, so that no run inherits the previous one's limit_req state, log or CPU.

    config = NginxConfig.write(folder, repository)     # once
    server = Nginx(namespace, config, cleanup)          # per run
    server.worker_cpu_seconds(); server.log_statuses(); server.stop()
"""
import os
import subprocess
import time

from processes import LabError, end_group, run

WORKER_CPU = 1


def _installed(source, replacements):
    text = open(source).read()
    for anchor, value in replacements.items():
        if anchor not in text:
            raise LabError(f"{source} no longer contains {anchor!r}: update scripts/lab/nginx.py")
        text = text.replace(anchor, value, 1)
    return text


class NginxConfig:
    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, "nginx.conf")
        self.log = os.path.join(folder, "gatewarden.log")
        self.pid_file = os.path.join(folder, "nginx.pid")

    @classmethod
    def write(cls, folder, repository):
        config = cls(folder)
        p = lambda name: os.path.join(folder, name)
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=api.example.com",
             "-keyout", p("key.pem"), "-out", p("cert.pem")])
        companion = os.path.join(repository, "deploy", "nginx")
        with open(p("gatewarden.conf"), "w") as f:
            f.write(open(os.path.join(companion, "gatewarden.conf")).read())
        with open(p("example-server.conf"), "w") as f:
            f.write(_installed(os.path.join(companion, "example-server.conf"), {
                "/etc/nginx/tls/api.example.com.crt": p("cert.pem"),
                "/etc/nginx/tls/api.example.com.key": p("key.pem"),
                "/var/log/nginx/gatewarden.log": config.log,
                "    listen 80;\n": "    listen 80;\n    listen 8443 ssl;   # lab: the default policy's auth port\n",
                "    location @gatewarden_auth_limited {":
                    "    # lab: the legitimate clients' page, no nginx limit, served by the backend\n"
                    "    location = / {\n        proxy_pass http://gatewarden_backend;\n    }\n\n"
                    "    location @gatewarden_auth_limited {",
            }))
        with open(config.path, "w") as f:
            f.write(f"""
worker_processes 1;
pid {config.pid_file};
error_log {p("error.log")};
events {{ worker_connections 512; }}  # nginx's default
http {{
    client_body_temp_path {p("body")}; proxy_temp_path {p("proxy")};
    fastcgi_temp_path {p("fastcgi")}; uwsgi_temp_path {p("uwsgi")}; scgi_temp_path {p("scgi")};
    access_log off;
    include {p("gatewarden.conf")};
    # The API behind nginx, where example-server.conf's upstream points.
    server {{
        listen 127.0.0.1:8080;
        location / {{ return 200 "ok\\n"; }}
    }}
    include {p("example-server.conf")};
}}
""")
        return config


class Nginx:
    def __init__(self, namespace, config, cleanup):
        self.config = config
        for stale in (config.log, config.pid_file):
            if os.path.exists(stale):
                os.remove(stale)
        run(["ip", "netns", "exec", namespace, "nginx", "-t", "-q", "-c", config.path])
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "taskset", "-c", str(WORKER_CPU), "nginx", "-c", config.path, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        cleanup.push(f"nginx (pid {self.process.pid})", self.stop)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.workers():
                return
            time.sleep(0.02)
        self.stop()
        raise LabError("nginx did not start: " + open(os.path.join(config.folder, "error.log")).read()[-400:])

    def master(self):
        try:
            return int(open(self.config.pid_file).read().strip())
        except (OSError, ValueError):
            return None

    def workers(self):
        master = self.master()
        if master is None:
            return []
        try:
            return [int(p) for p in open(f"/proc/{master}/task/{master}/children").read().split()]
        except OSError:
            return []

    def worker_cpu_seconds(self):
        """User and system CPU of the workers so far (/proc/PID/stat fields 14 and 15)."""
        total = 0
        for pid in self.workers():
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
        return total / os.sysconf("SC_CLK_TCK")

    def log_statuses(self, exclude_prefix):
        """{status: count} of the requests nginx logged (gatewarden format), leaving out sources starting with `exclude_prefix`."""
        counts = {}
        try:
            lines = open(self.config.log).read().splitlines()
        except OSError:
            return counts
        for line in lines:
            fields = line.split(" ")
            if len(fields) == 9 and fields[0] == "gw1" and not fields[2].startswith(exclude_prefix):
                counts[fields[7]] = counts.get(fields[7], 0) + 1
        return counts

    def stop(self):
        end_group(self.process)
