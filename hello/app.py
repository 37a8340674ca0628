def main(event):
    return {"hello": event["name"]}
