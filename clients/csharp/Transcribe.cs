// Transcribe an audio file with a SenseVoice server: POST /v1/audio/transcriptions (response_format=text) with
// HttpWebRequest (System.dll only, so Mono's mono-mcs package is enough), print the transcript.
//
//   mcs -out:build/Transcribe.exe clients/csharp/Transcribe.cs
//   mono build/Transcribe.exe FILE [URL]      URL default http://127.0.0.1:8000; key from $SENSEVOICE_API_KEY
using System;
using System.IO;
using System.Net;
using System.Text;

static class Transcribe
{
    const string DefaultUrl = "http://127.0.0.1:8000";

    static void Write(Stream stream, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        stream.Write(bytes, 0, bytes.Length);
    }

    static void Field(Stream stream, string boundary, string name, string value)
    {
        Write(stream, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n");
    }

    // A multipart/form-data body: the model and format fields, then the file.
    static byte[] Multipart(string boundary, string path)
    {
        var body = new MemoryStream();
        Field(body, boundary, "model", "sensevoice-small");
        Field(body, boundary, "response_format", "text");
        string filename = Path.GetFileName(path).Replace("\"", "%22");
        Write(body, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename
                    + "\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        byte[] audio = File.ReadAllBytes(path);
        body.Write(audio, 0, audio.Length);
        Write(body, "\r\n--" + boundary + "--\r\n");
        return body.ToArray();
    }

    static string ReadAll(WebResponse response)
    {
        using (var reader = new StreamReader(response.GetResponseStream(), Encoding.UTF8))
            return reader.ReadToEnd();
    }

    static int Main(string[] args)
    {
        if (args.Length < 1 || args.Length > 2)
        {
            Console.Error.WriteLine("usage: mono Transcribe.exe FILE [URL]   (API key from $SENSEVOICE_API_KEY)");
            return 2;
        }
        string url = (args.Length > 1 ? args[1] : DefaultUrl).TrimEnd('/') + "/v1/audio/transcriptions";
        string boundary = "sensevoice-" + Guid.NewGuid().ToString("N");
        byte[] payload = Multipart(boundary, args[0]);

        ServicePointManager.Expect100Continue = false;  // send the body at once
        var request = (HttpWebRequest)WebRequest.Create(url);
        request.Method = "POST";
        request.ContentType = "multipart/form-data; boundary=" + boundary;
        request.ContentLength = payload.Length;
        string key = Environment.GetEnvironmentVariable("SENSEVOICE_API_KEY");
        if (!string.IsNullOrEmpty(key))
            request.Headers["Authorization"] = "Bearer " + key;
        using (Stream stream = request.GetRequestStream())
            stream.Write(payload, 0, payload.Length);

        string text;
        try
        {
            using (WebResponse response = request.GetResponse())
                text = ReadAll(response);
        }
        catch (WebException error) when (error.Response is HttpWebResponse failed)
        {
            Console.Error.WriteLine("HTTP " + (int)failed.StatusCode + ": " + ReadAll(failed));
            return 1;
        }
        var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
        stdout.Write(text);  // the text format ends with a newline
        stdout.Flush();
        return 0;
    }
}
