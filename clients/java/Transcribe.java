// Transcribe an audio file with a SenseVoice server: POST /v1/audio/transcriptions (response_format=text) with
// java.net.http (JDK 11+), print the transcript.
//
//   javac -d build/java clients/java/Transcribe.java
//   java -cp build/java Transcribe FILE [URL]      URL default http://127.0.0.1:8000; key from $SENSEVOICE_API_KEY

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;

public final class Transcribe {
    private static final String DEFAULT_URL = "http://127.0.0.1:8000";

    private static void write(ByteArrayOutputStream out, String text) {
        out.writeBytes(text.getBytes(StandardCharsets.UTF_8));
    }

    private static void field(ByteArrayOutputStream out, String boundary, String name, String value) {
        write(out, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n");
    }

    /** A multipart/form-data body: the model and format fields, then the file. */
    static byte[] multipart(String boundary, Path file) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        field(out, boundary, "model", "sensevoice-small");
        field(out, boundary, "response_format", "text");
        String filename = file.getFileName().toString().replace("\"", "%22");
        write(out, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename
                + "\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        out.writeBytes(Files.readAllBytes(file));
        write(out, "\r\n--" + boundary + "--\r\n");
        return out.toByteArray();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: java Transcribe FILE [URL]   (API key from $SENSEVOICE_API_KEY)");
            System.exit(2);
        }
        String base = (args.length > 1 ? args[1] : DEFAULT_URL).replaceAll("/+$", "");
        String boundary = "sensevoice-" + UUID.randomUUID();
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(base + "/v1/audio/transcriptions"))
                .version(HttpClient.Version.HTTP_1_1)
                .header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(HttpRequest.BodyPublishers.ofByteArray(multipart(boundary, Path.of(args[0]))));
        String key = System.getenv("SENSEVOICE_API_KEY");
        if (key != null && !key.isEmpty()) {
            request.header("Authorization", "Bearer " + key);
        }
        HttpResponse<String> response = HttpClient.newHttpClient()
                .send(request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        if (response.statusCode() != 200) {
            System.err.println("HTTP " + response.statusCode() + ": " + response.body());
            System.exit(1);
        }
        // JDK 17 encodes System.out in the locale's charset; the transcript may be any script.
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        out.print(response.body());
        out.flush();
    }
}
