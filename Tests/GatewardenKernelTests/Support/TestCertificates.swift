/// A throwaway CA and a server certificate for localhost, made with the openssl CLI.
enum TestCertificates {
    static func make(in directory: String) throws {
        let script = """
        set -e
        cd "\(directory)"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=gatewarden-test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext 2>/dev/null
        """
        try Command.run(["sh", "-c", script])
    }
}
